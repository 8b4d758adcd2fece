// Child-process bookkeeping for the benchmark: starts every server and load tool in its own
// process group, remembers it, and stops all of them on the way out (normal end, error, Ctrl-C,
// SIGTERM, or the run's time limit). It measures nothing.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect } from 'node:net';

const running = new Set();
const hasSetpriv = existsSync('/usr/bin/setpriv');

/**
 * Starts `cmd args` detached (own process group) with output appended to `logPath` (or piped when
 * `capture`). Native tools get PR_SET_PDEATHSIG via setpriv so they die with the bench even if it
 * is SIGKILLed; Weft processes get the same from their `--exit-with-parent` stdin pipe.
 */
export function start(name, cmd, args, { env, logPath, capture = false, pdeathsig = true, stdinPipe = false } = {}) {
  const fd = logPath ? openSync(logPath, 'a') : 'ignore';
  const useSetpriv = pdeathsig && hasSetpriv;
  const child = spawn(useSetpriv ? '/usr/bin/setpriv' : cmd, useSetpriv ? ['--pdeathsig', 'KILL', cmd, ...args] : args, {
    env: { ...process.env, ...env },
    stdio: [stdinPipe ? 'pipe' : 'ignore', capture ? 'pipe' : fd, capture ? 'pipe' : fd],
    detached: true,
  });
  if (typeof fd === 'number') closeSync(fd);
  child.stdin?.on('error', () => undefined);
  const p = { name, child, logPath, exited: false, out: '', err: '' };
  if (capture) {
    child.stdout.on('data', (d) => (p.out += d));
    child.stderr.on('data', (d) => (p.err += d));
  }
  p.done = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      p.exited = true;
      running.delete(p);
      resolve({ code, signal });
    });
    child.once('error', (e) => {
      p.exited = true;
      running.delete(p);
      resolve({ code: null, signal: null, error: e });
    });
  });
  running.add(p);
  return p;
}

function signalGroup(p, sig) {
  if (p.exited || p.child.pid === undefined) return;
  try {
    process.kill(-p.child.pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
export async function stop(p, graceMs = 3000) {
  signalGroup(p, 'SIGTERM');
  const t = setTimeout(() => signalGroup(p, 'SIGKILL'), graceMs);
  await p.done;
  clearTimeout(t);
}

/** Stops everything still running, newest first. */
export async function stopAll(graceMs = 3000) {
  await Promise.all([...running].reverse().map((p) => stop(p, graceMs)));
}

let installed = false;
let bailing = false;
const finalizers = [];
/** Registers `fn` (sync) to run when the bench bails out, after its processes are stopped. */
export function onBail(fn) {
  finalizers.push(fn);
}
/** Installs the signal, error and exit handlers that clean up, with a limit on the whole run. */
export function installCleanup(limitMs) {
  if (installed) return;
  installed = true;
  const bail = async (why, code) => {
    if (bailing) return; // a child killed by the first bail must not report a second failure
    bailing = true;
    console.error(`\nbench: ${why}; stopping every process it started`);
    await stopAll(1500);
    for (const fn of finalizers) {
      try {
        fn();
      } catch {
        // best effort
      }
    }
    process.exit(code);
  };
  process.once('SIGINT', () => bail('interrupted', 130));
  process.once('SIGTERM', () => bail('terminated', 143));
  process.on('uncaughtException', (e) => bail(`error: ${e?.stack ?? e}`, 1));
  process.on('unhandledRejection', (e) => bail(`error: ${e?.stack ?? e}`, 1));
  // Last resort: whatever is left when the process exits is SIGKILLed synchronously.
  process.on('exit', () => {
    for (const p of running) signalGroup(p, 'SIGKILL');
  });
  const timer = setTimeout(() => bail(`the run exceeded its ${limitMs / 1000} s limit`, 1), limitMs);
  timer.unref();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The last lines of a log file, for error messages. */
export function tail(path, n = 10) {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export function tcpOpen(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.setTimeout(500, () => s.destroy());
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

export function httpStatus(url, headers = {}) {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 1000, agent: false, headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

/** Polls `probe` until true; throws (with the log's tail) if `p` exits first or time runs out. */
export async function waitFor(p, probe, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.exited) throw new Error(`${p.name} exited before ${what}\n${tail(p.logPath)}`);
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${p.name} not ${what} after ${timeoutMs / 1000} s\n${tail(p.logPath)}`);
    await sleep(100);
  }
}
