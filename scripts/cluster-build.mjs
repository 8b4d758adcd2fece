// The test cluster's binary: builds e2e/cluster/bin/weft-kube with Go (once; again when go.mod,
// go.sum or *.go change), one build at a time. Also the helpers scripts/cluster*.mjs share.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const GO_DIR = join(ROOT, 'e2e', 'cluster');
const BIN_DIR = join(GO_DIR, 'bin');
export const BINARY = join(BIN_DIR, 'weft-kube');
const STAMP = join(BIN_DIR, 'weft-kube.stamp');
const LOCK = join(BIN_DIR, 'build.lock');

/** A failure with a stable code; `exit` is the process exit status it maps to. */
export class ClusterError extends Error {
  constructor(code, message, exit = 1) {
    super(message);
    this.code = code;
    this.exit = exit;
  }
}

export const log = (msg) => process.stderr.write(`cluster: ${msg}\n`);
/** `p` relative to the working directory when it is below it, else absolute. */
export const rel = (p) => {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


/** The k8s.io/kubernetes version go.mod pins, e.g. {version: 'v1.37.2', major: '1', minor: '37'}. */
export function pinnedVersion() {
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

export function pidAlive(pid) {
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
export async function ensureBuilt({ allowBuild }) {
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
  log(`building ${rel(BINARY)} (k8s.io/kubernetes ${version}, ${go}); the first build downloads the modules and compiles Kubernetes: about 12 minutes on 2 cores`);
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
