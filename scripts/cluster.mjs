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
//   down [--dir DIR]      stops them all (SIGTERM, then SIGKILL after 10 s)
//   status [--dir DIR]    says whether it is up (exit 0) or not (exit 1)
//
// Exit status: 0 done, 1 failed, 2 bad usage, 3 a prerequisite is missing here (Go, openssl, or
// the built binary with --no-build): e2e/test/kube-cluster.ts turns 3 into a skip outside CI.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const GO_DIR = join(ROOT, 'e2e', 'cluster');
const BIN_DIR = join(GO_DIR, 'bin');
const BINARY = join(BIN_DIR, 'weft-kube');
const STAMP = join(BIN_DIR, 'weft-kube.stamp');
const LOCK = join(BIN_DIR, 'build.lock');
const NODE_NAME = 'weft-node';
const SERVICE_CIDR = '10.96.0.0/16';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const UP_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 10_000;
// Stopped in this order: the API's clients first, etcd last.
const COMPONENTS = ['node', 'controllerManager', 'apiServer', 'etcd'];

/** A failure with a stable code; `exit` is the process exit status it maps to. */
class ClusterError extends Error {
  constructor(code, message, exit = 1) {
    super(message);
    this.code = code;
    this.exit = exit;
  }
}

const log = (msg) => process.stderr.write(`cluster: ${msg}\n`);
const rel = (p) => {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// build

/** The k8s.io/kubernetes version go.mod pins, e.g. {version: 'v1.37.2', major: '1', minor: '37'}. */
function pinnedVersion() {
  const m = /^\s*k8s\.io\/kubernetes (v(\d+)\.(\d+)\.\d+)\s*$/m.exec(fs.readFileSync(join(GO_DIR, 'go.mod'), 'utf8'));
  if (!m) throw new ClusterError('bad-go-mod', `${rel(join(GO_DIR, 'go.mod'))} does not require k8s.io/kubernetes vX.Y.Z`);
  return { version: m[1], major: m[2], minor: m[3] };
}

/** go build's arguments: static, trimmed, stripped, and stamped with the pinned version (as Kubernetes' own build does). */
function buildArgs() {
  const { version, major, minor } = pinnedVersion();
  const ldflags = ['-s', '-w'];
  for (const pkg of ['k8s.io/client-go/pkg/version', 'k8s.io/component-base/version']) {
    ldflags.push(`-X ${pkg}.gitVersion=${version}`, `-X ${pkg}.gitMajor=${major}`, `-X ${pkg}.gitMinor=${minor}`, `-X ${pkg}.gitTreeState=clean`);
  }
  return ['build', '-trimpath', `-ldflags=${ldflags.join(' ')}`];
}

/** Hash of everything the binary is built from: go.mod, go.sum, *.go and the build arguments. */
function sourceHash() {
  const h = createHash('sha256');
  const files = fs.readdirSync(GO_DIR).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go')).sort();
  for (const f of files) h.update(`${f}\0`).update(fs.readFileSync(join(GO_DIR, f))).update('\0');
  h.update(JSON.stringify(buildArgs()));
  return h.digest('hex');
}

function isBuilt() {
  try {
    return fs.existsSync(BINARY) && fs.readFileSync(STAMP, 'utf8').trim() === sourceHash();
  } catch {
    return false;
  }
}

function goVersion() {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? undefined : r.stdout.trim();
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  try {
    // A zombie (exited, not yet reaped by its parent) is not running.
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Takes the build lock (one Go build at a time on this machine); waits for another holder. Resolves its release. */
async function takeBuildLock() {
  fs.mkdirSync(BIN_DIR, { recursive: true });
  let announced = false;
  for (;;) {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      const release = () => fs.rmSync(LOCK, { force: true });
      process.once('exit', release);
      return () => {
        process.removeListener('exit', release);
        release();
      };
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    const holder = Number(fs.readFileSync(LOCK, 'utf8')) || 0;
    if (holder > 0 && holder !== process.pid && pidAlive(holder)) {
      if (!announced) log(`waiting for the build already running in process ${holder}`);
      announced = true;
      await sleep(2000);
    } else {
      fs.rmSync(LOCK, { force: true }); // stale: its process is gone
    }
  }
}

/** Builds the binary unless it is current. `allowBuild: false` fails with exit 3 instead. */
async function ensureBuilt({ allowBuild }) {
  if (isBuilt()) return;
  const missing = `${rel(BINARY)} is not built or is out of date`;
  if (!allowBuild) throw new ClusterError('not-built', `${missing}: run \`npm run cluster -- build\` (needs Go)`, 3);
  const go = goVersion();
  if (!go) {
    throw new ClusterError('go-missing', `${missing} and Go is not installed: install Go >= 1.26 (https://go.dev/dl/) to build the test cluster from e2e/cluster/`, 3);
  }
  const release = await takeBuildLock();
  try {
    if (!isBuilt()) await build(go); // else built by the process we waited for
  } finally {
    release();
  }
}

/** Runs `go build` (niced) into a temp file, then moves it into place and stamps it with the hash of the sources it read. */
async function build(go) {
  const { version } = pinnedVersion();
  const hash = sourceHash(); // taken first: a source edited during the build makes the stamp stale, not wrong
  log(`building ${rel(BINARY)} (k8s.io/kubernetes ${version}, ${go}); the first build downloads the modules and compiles Kubernetes: about 13 minutes on 2 cores`);
  const started = Date.now();
  const tmp = `${BINARY}.tmp-${process.pid}`;
  const args = ['-n', '10', 'go', ...buildArgs(), '-o', tmp, '.'];
  const code = await new Promise((res) => {
    const child = spawn('nice', args, { cwd: GO_DIR, env: { ...process.env, CGO_ENABLED: '0' }, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', () => res(-1));
    child.on('exit', (c) => res(c ?? 1));
  });
  if (code !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new ClusterError('build-failed', `go build failed (exit ${code}) in ${rel(GO_DIR)}`);
  }
  fs.renameSync(tmp, BINARY);
  fs.writeFileSync(STAMP, `${hash}\n`);
  log(`built ${rel(BINARY)} in ${Math.round((Date.now() - started) / 1000)} s`);
}

// ---------------------------------------------------------------------------------------------
// certificates and kubeconfigs

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new ClusterError('openssl-missing', 'openssl is not installed: it makes the test cluster\'s certificates', 3);
  if (r.status !== 0) throw new ClusterError('openssl-failed', `openssl ${args[0]} failed: ${r.stderr.trim().split('\n')[0]}`);
}

function writeKey(path, type) {
  const { privateKey, publicKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  fs.writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return publicKey.export({ type: 'spki', format: 'pem' });
}

/**
 * A CA, the API server's serving certificate, client certificates for the admin
 * (O=system:masters) and the controller manager, a front-proxy CA and its client (the API
 * server's identity towards aggregated API servers, and the request-header CA the controller
 * manager's delegated authentication reads), and the service-account signing key pair, in `pki`.
 * Keys from Node's crypto; certificates from openssl (Node cannot issue them).
 */
function makePki(pki) {
  fs.mkdirSync(pki, { recursive: true });
  const cnf = (exts) => `[req]\ndistinguished_name = dn\n[dn]\n[ext]\n${exts.join('\n')}\n`;
  const ca = (name, cn) => {
    writeKey(join(pki, `${name}.key`), 'ec');
    fs.writeFileSync(join(pki, `${name}.cnf`), cnf(['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign, digitalSignature', 'subjectKeyIdentifier = hash']));
    openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', '3650', '-config', `${name}.cnf`, '-extensions', 'ext', '-out', `${name}.crt`], pki);
  };
  const leaf = (name, issuer, subject, exts) => {
    writeKey(join(pki, `${name}.key`), 'ec');
    fs.writeFileSync(join(pki, `${name}.cnf`), cnf(['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment', ...exts]));
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-config', `${name}.cnf`, '-out', `${name}.csr`], pki);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-set_serial', `0x${createHash('sha1').update(name + Date.now()).digest('hex').slice(0, 16)}`,
      '-days', '3650', '-extfile', `${name}.cnf`, '-extensions', 'ext', '-out', `${name}.crt`], pki);
  };
  ca('ca', 'weft-test-cluster-ca');
  const sans = ['IP:127.0.0.1', 'IP:10.96.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'];
  leaf('apiserver', 'ca', '/CN=kube-apiserver', ['extendedKeyUsage = serverAuth', `subjectAltName = ${sans.join(', ')}`]);
  leaf('admin', 'ca', '/O=system:masters/CN=kubernetes-admin', ['extendedKeyUsage = clientAuth']);
  leaf('controller-manager', 'ca', '/CN=system:kube-controller-manager', ['extendedKeyUsage = clientAuth']);
  ca('front-proxy-ca', 'weft-test-cluster-front-proxy-ca');
  leaf('front-proxy-client', 'front-proxy-ca', '/CN=front-proxy-client', ['extendedKeyUsage = clientAuth']);
  fs.writeFileSync(join(pki, 'sa.pub'), writeKey(join(pki, 'sa.key'), 'rsa'));
}

function kubeconfig(server, pki, user) {
  const b64 = (f) => fs.readFileSync(join(pki, f)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: weft-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(`${user}.crt`)}`,
    `    client-key-data: ${b64(`${user}.key`)}`,
    'contexts:',
    '- name: weft-test',
    '  context:',
    '    cluster: weft-test',
    `    user: ${user}`,
    'current-context: weft-test',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// processes, state and readiness

/** `n` distinct free TCP ports on 127.0.0.1 (held open together so they differ). */
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
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('weft-kube') && cmdline.includes(`${dir}/`);
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
  await Promise.all(['node', 'controllerManager'].map((c) => stopPid(pids[c], state.dir)));
  await stopPid(pids.apiServer, state.dir);
  await stopPid(pids.etcd, state.dir);
  fs.rmSync(statePath(state.dir), { force: true });
}

// ---------------------------------------------------------------------------------------------
// commands

async function up(dir, { allowBuild }) {
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

async function down(dir) {
  const state = readState(dir);
  if (!state) {
    log(`not running in ${rel(dir)} (no state.json)`);
    return;
  }
  await stopAll(state);
  log(`stopped the cluster in ${rel(dir)}`);
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

const USAGE = 'usage: npm run cluster -- build | up [--dir DIR] [--no-build] | down [--dir DIR] | status [--dir DIR]';

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: {
      dir: { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
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
      await up(dir, { allowBuild: !values['no-build'] });
      return 0;
    case 'down':
      await down(dir);
      return 0;
    case 'status':
      return status(dir);
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
