#!/usr/bin/env node
// `npm run cluster -- COMMAND [--dir DIR]`: a real Kubernetes control plane on loopback for
// tests and demos (SPEC "Test cluster"; docs/operations.md "Test cluster").
//
//   build                 builds e2e/cluster/bin/weft-kube (once; again only when e2e/cluster's
//                         go.mod, go.sum or *.go change)
//   up [--dir DIR]        builds if needed, then starts etcd, kube-apiserver,
//                         kube-controller-manager and the node stand-in (one Node, no kubelet)
//                         on free loopback ports; returns when /readyz is ok and the `default`
//                         ServiceAccount exists. Writes DIR/kubeconfig (admin), DIR/bin/kubectl,
//                         DIR/state.json (pids, ports), DIR/logs/. Default DIR: .cluster/
//      [--no-build]       fail (exit 3) instead of building when the binary is missing or stale
//      [--owner-pid PID]  and stop it when process PID exits (a test killed before its close()):
//                         a watcher process (`watch`, internal) checks every second
//   down [--dir DIR]      stops them all (SIGTERM, then SIGKILL after 10 s)
//   status [--dir DIR]    says whether it is up (exit 0) or not (exit 1)
//
// Exit status: 0 done, 1 failed, 2 bad usage, 3 a prerequisite is missing here (Go, openssl, or
// the built binary with --no-build): e2e/test/kube-cluster.ts turns 3 into a skip outside CI.
// The build is in cluster-build.mjs, the certificates in cluster-pki.mjs.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BINARY, ClusterError, ROOT, ensureBuilt, log, pidAlive, pinnedVersion, rel, sleep } from './cluster-build.mjs';
import { kubeconfig, makePki } from './cluster-pki.mjs';

const NODE_NAME = 'weft-node';
const SERVICE_CIDR = '10.96.0.0/16';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const UP_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 10_000;
// Stopped in this order: the API's clients first, etcd last.
const COMPONENTS = ['node', 'controllerManager', 'apiServer', 'etcd'];

// ---------------------------------------------------------------------------------------------
// processes, state and readiness

async function freePorts(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => res(s));
  })));
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const statePath = (dir) => join(dir, 'state.json');

function readState(dir) {
  try {
    return JSON.parse(fs.readFileSync(statePath(dir), 'utf8'));
  } catch {
    return undefined;
  }
}

function writeState(state) {
  const tmp = `${statePath(state.dir)}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, statePath(state.dir));
}

/** Whether `pid` is still the weft-kube process this cluster started (not a reused pid). */
function isOurs(pid, dir) {
  if (!pid || !pidAlive(pid)) return false;
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const isWatcher = args.some((a) => a.endsWith('cluster.mjs')) && args.includes('watch') && args.includes(dir);
    return isWatcher || (args[0]?.endsWith('weft-kube') === true && args.some((a) => a.includes(`${dir}/`)));
  } catch {
    return false;
  }
}

/** Starts `weft-kube <command> args` in its own process group, logging to DIR/logs/<command>.log. */
function startComponent(state, name, command, args) {
  const logFile = join(state.dir, 'logs', `${command}.log`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(BINARY, [command, ...args], { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const exited = { code: undefined };
  child.on('exit', (code, signal) => { exited.code = code ?? signal; });
  child.unref();
  state.pids[name] = child.pid;
  writeState(state);
  return { name, logFile, exited };
}

function logTail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** GET `path` on the API server as the admin: resolves {status, body}, or undefined when unreachable. */
function apiGet(state, path, timeoutMs = 5000) {
  const pki = join(state.dir, 'pki');
  return new Promise((res) => {
    const req = https.get(`${state.apiServerUrl}${path}`, {
      ca: fs.readFileSync(join(pki, 'ca.crt')),
      cert: fs.readFileSync(join(pki, 'admin.crt')),
      key: fs.readFileSync(join(pki, 'admin.key')),
      timeout: timeoutMs,
    }, (resp) => {
      let body = '';
      resp.setEncoding('utf8');
      resp.on('data', (c) => { body += c; });
      resp.on('end', () => res({ status: resp.statusCode, body }));
      resp.on('error', () => res(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(undefined));
  });
}

function httpOk(url) {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
}

/** Polls `check` until it is true; fails early when a watched component exits. */
async function waitFor(what, deadline, components, check) {
  for (;;) {
    for (const c of components) {
      if (c.exited.code !== undefined) {
        throw new ClusterError('component-exited', `${c.name} exited (${c.exited.code}) while waiting for ${what}; ${rel(c.logFile)} ends:\n${logTail(c.logFile)}`);
      }
    }
    if (await check()) return;
    if (Date.now() > deadline) throw new ClusterError('timeout', `timed out waiting for ${what} (logs in ${rel(components.at(-1)?.logFile ?? '.')})`);
    await sleep(250);
  }
}

async function isUp(state) {
  if (!COMPONENTS.every((c) => isOurs(state.pids?.[c], state.dir))) return false;
  const r = await apiGet(state, '/readyz', 2000);
  return r?.status === 200;
}

async function stopPid(pid, dir) {
  if (!isOurs(pid, dir)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  const deadline = Date.now() + STOP_GRACE_MS;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return;
    await sleep(100);
  }
  try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
}

/** Stops every recorded component (clients first, etcd last) and removes state.json. */
async function stopAll(state) {
  const pids = state.pids ?? {};
  if (pids.watcher !== process.pid) await stopPid(pids.watcher, state.dir);
  await Promise.all(['node', 'controllerManager'].map((c) => stopPid(pids[c], state.dir)));
  await stopPid(pids.apiServer, state.dir);
  await stopPid(pids.etcd, state.dir);
  fs.rmSync(statePath(state.dir), { force: true });
}

// ---------------------------------------------------------------------------------------------
// commands

async function up(dir, { allowBuild, ownerPid }) {
  const old = readState(dir);
  if (old) {
    if (await isUp(old)) {
      log(`already up in ${rel(dir)} (API server ${old.apiServerUrl}; kubeconfig ${rel(join(dir, 'kubeconfig'))})`);
      return;
    }
    log(`cleaning up a stale cluster state in ${rel(dir)}`);
    await stopAll(old);
  }
  await ensureBuilt({ allowBuild });
  const started = Date.now();
  const deadline = started + UP_TIMEOUT_MS;

  // A fresh cluster every time: new certificates, empty etcd.
  for (const sub of ['etcd', 'pki', 'logs', 'bin']) fs.rmSync(join(dir, sub), { recursive: true, force: true });
  for (const sub of ['logs', 'bin']) fs.mkdirSync(join(dir, sub), { recursive: true });
  const pki = join(dir, 'pki');
  makePki(pki);
  const [etcdClient, etcdPeer, apiPort, kcmPort] = await freePorts(4);
  const apiServerUrl = `https://127.0.0.1:${apiPort}`;
  fs.writeFileSync(join(dir, 'kubeconfig'), kubeconfig(apiServerUrl, pki, 'admin'), { mode: 0o600 });
  fs.writeFileSync(join(pki, 'controller-manager.kubeconfig'), kubeconfig(apiServerUrl, pki, 'controller-manager'), { mode: 0o600 });
  fs.symlinkSync(BINARY, join(dir, 'bin', 'kubectl'));

  const { version } = pinnedVersion();
  const state = {
    dir, version, apiServerUrl, kubeconfig: join(dir, 'kubeconfig'), kubectl: join(dir, 'bin', 'kubectl'), nodeName: NODE_NAME,
    ports: { etcdClient, etcdPeer, apiServer: apiPort, controllerManager: kcmPort }, pids: {}, startedAt: new Date().toISOString(),
  };
  writeState(state);
  try {
    if (ownerPid) startWatcher(state, ownerPid);
    const etcd = startComponent(state, 'etcd', 'etcd', [
      `--data-dir=${join(dir, 'etcd')}`, `--listen-client-url=http://127.0.0.1:${etcdClient}`, `--listen-peer-url=http://127.0.0.1:${etcdPeer}`,
    ]);
    await waitFor('etcd /health', deadline, [etcd], () => httpOk(`http://127.0.0.1:${etcdClient}/health`));

    const apiServer = startComponent(state, 'apiServer', 'kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`, `--cert-dir=${pki}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`, `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      `--requestheader-client-ca-file=${join(pki, 'front-proxy-ca.crt')}`, '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User', '--requestheader-group-headers=X-Remote-Group', '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${join(pki, 'front-proxy-client.crt')}`, `--proxy-client-key-file=${join(pki, 'front-proxy-client.key')}`,
      '--authorization-mode=Node,RBAC',
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`, `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--api-audiences=${SA_ISSUER},weft`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
      '--allow-privileged=true',
      // The `kubernetes` Service gets no endpoints: 127.0.0.1 is not a valid endpoint address.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
    ]);
    await waitFor('kube-apiserver /readyz', deadline, [etcd, apiServer], async () => (await apiGet(state, '/readyz', 2000))?.status === 200);

    const kcmConfig = join(pki, 'controller-manager.kubeconfig');
    const controllerManager = startComponent(state, 'controllerManager', 'kube-controller-manager', [
      `--kubeconfig=${kcmConfig}`, `--authentication-kubeconfig=${kcmConfig}`, `--authorization-kubeconfig=${kcmConfig}`,
      '--bind-address=127.0.0.1', `--secure-port=${kcmPort}`, `--cert-dir=${join(pki, 'controller-manager')}`,
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${join(pki, 'sa.key')}`,
      `--root-ca-file=${join(pki, 'ca.crt')}`,
      `--cluster-signing-cert-file=${join(pki, 'ca.crt')}`, `--cluster-signing-key-file=${join(pki, 'ca.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      // No kubelet heartbeats: the node lifecycle controller would mark the node and its pods
      // NotReady and evict them.
      '--controllers=*,-node-lifecycle-controller,-taint-eviction-controller',
      '--leader-elect=false',
    ]);
    const node = startComponent(state, 'node', 'node', [`--kubeconfig=${join(dir, 'kubeconfig')}`, `--node-name=${NODE_NAME}`]);
    const all = [etcd, apiServer, controllerManager, node];
    await waitFor('the default ServiceAccount', deadline, all, async () => (await apiGet(state, '/api/v1/namespaces/default/serviceaccounts/default'))?.status === 200);
    await waitFor(`Node ${NODE_NAME}`, deadline, all, async () => (await apiGet(state, `/api/v1/nodes/${NODE_NAME}`))?.status === 200);
  } catch (err) {
    await stopAll(state);
    throw err;
  }
  log(`up in ${((Date.now() - started) / 1000).toFixed(1)} s: Kubernetes ${version} at ${apiServerUrl}`);
  log(`  kubeconfig ${rel(state.kubeconfig)}; kubectl ${rel(state.kubectl)} --kubeconfig ${rel(state.kubeconfig)} get ns`);
}

/** Starts `cluster.mjs watch` detached: it stops the cluster when `ownerPid` exits. */
function startWatcher(state, ownerPid) {
  const fd = fs.openSync(join(state.dir, 'logs', 'watcher.log'), 'a');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'watch', '--dir', state.dir, '--owner-pid', String(ownerPid)], {
    detached: true, stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  child.unref();
  state.pids.watcher = child.pid;
  writeState(state);
}

/** The watcher's loop: ends when the cluster is gone or taken over; stops it when the owner exits. */
async function watch(dir, ownerPid) {
  for (;;) {
    await sleep(1000);
    const state = readState(dir);
    if (state?.pids?.watcher !== process.pid) return; // stopped by down, or a new up
    if (!pidAlive(ownerPid)) {
      log(`process ${ownerPid} that owned the cluster in ${dir} exited: stopping it`);
      await stopAll(state);
      return;
    }
  }
}

async function down(dir) {
  const state = readState(dir);
  if (!state) {
    log(`not running in ${rel(dir)} (no state.json)`);
    return;
  }
  await stopAll(state);
  log(`stopped the cluster in ${rel(dir)}`);
}

/**
 * Stops kube-apiserver and starts it again with the same flags (tests: its watch cache starts
 * afresh, so a watch from an older resourceVersion gets 410 Gone, as after a real restart).
 */
async function restartApiServer(dir) {
  const state = readState(dir);
  if (!state || !(await isUp(state))) throw new ClusterError('not-running', `not running in ${rel(dir)}`, 1);
  const pid = state.pids.apiServer;
  const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(2);
  await stopPid(pid, state.dir);
  const apiServer = startComponent(state, 'apiServer', 'kube-apiserver', args);
  await waitFor('kube-apiserver /readyz', Date.now() + UP_TIMEOUT_MS, [apiServer], async () => (await apiGet(state, '/readyz', 2000))?.status === 200);
  log(`restarted kube-apiserver in ${rel(dir)} (pid ${state.pids.apiServer})`);
}

async function status(dir) {
  const state = readState(dir);
  if (state && (await isUp(state))) {
    process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
    return 0;
  }
  log(state ? `not running in ${rel(dir)} (stale state.json: \`down\` cleans it)` : `not running in ${rel(dir)}`);
  return 1;
}

const USAGE = 'usage: npm run cluster -- build | up [--dir DIR] [--no-build] [--owner-pid PID] | down [--dir DIR] | status [--dir DIR] | restart-apiserver [--dir DIR]';

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: {
      dir: { type: 'string' }, 'no-build': { type: 'boolean' }, 'owner-pid': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    } });
  } catch (err) {
    const option = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'([^']+)'/.exec(err.message)?.[1] : undefined;
    throw new ClusterError('usage', `${option ? `unknown option '${option}'` : err.message.split('\n')[0]} (${USAGE})`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...extra] = positionals;
  if (!command) throw new ClusterError('usage', USAGE, 2);
  if (extra.length > 0) throw new ClusterError('usage', `unexpected argument '${extra[0]}' (${USAGE})`, 2);
  if (values.dir === '') throw new ClusterError('usage', '--dir needs a directory', 2);
  if (command !== 'up' && values['no-build']) throw new ClusterError('usage', `--no-build applies to up, not ${command}`, 2);
  const ownerPid = values['owner-pid'] === undefined ? undefined : Number(values['owner-pid']);
  if (ownerPid !== undefined && !(Number.isInteger(ownerPid) && ownerPid > 0)) throw new ClusterError('usage', `--owner-pid needs a process id, not '${values['owner-pid']}'`, 2);
  if (ownerPid !== undefined && command !== 'up' && command !== 'watch') throw new ClusterError('usage', `--owner-pid applies to up, not ${command}`, 2);
  if (command === 'build' && values.dir !== undefined) throw new ClusterError('usage', '--dir applies to up, down and status, not build', 2);
  // npm runs scripts from the package root; a relative --dir means the caller's directory.
  const dir = values.dir === undefined ? join(ROOT, '.cluster') : resolve(process.env.INIT_CWD ?? process.cwd(), values.dir);
  switch (command) {
    case 'build':
      await ensureBuilt({ allowBuild: true });
      log(`${rel(BINARY)} is built (${pinnedVersion().version})`);
      return 0;
    case 'up':
      fs.mkdirSync(dir, { recursive: true });
      await up(dir, { allowBuild: !values['no-build'], ownerPid });
      return 0;
    case 'watch': // internal: started by `up --owner-pid`
      if (ownerPid === undefined || values.dir === undefined) throw new ClusterError('usage', 'watch needs --dir and --owner-pid', 2);
      await watch(dir, ownerPid);
      return 0;
    case 'down':
      await down(dir);
      return 0;
    case 'status':
      return status(dir);
    case 'restart-apiserver':
      await restartApiServer(dir);
      return 0;
    default:
      throw new ClusterError('usage', `unknown command '${command}' (${USAGE})`, 2);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (!(err instanceof ClusterError)) throw err;
    log(err.message);
    process.exit(err.exit);
  },
);
