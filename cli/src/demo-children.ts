/**
 * The demo's child processes: `weft control-plane` and one `weft sidecar` per pod, each run as
 * `node cli/dist/src/main.js …` with its output in a log file. Children run in their own session
 * (Ctrl-C in the terminal reaches only the demo, which then stops them in order) and with
 * `--exit-with-parent` on a stdin pipe, so they exit even if the demo is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { get } from 'node:http';
import { join } from 'node:path';
import { CliError } from './errors';
import { nodeFlagsFor } from './node-flags';

/** The compiled CLI entry point, next to this file. */
export const MAIN_JS = join(__dirname, 'main.js');

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface WeftChild {
  /** e.g. `control plane`, `sidecar of backend-v1` */
  readonly name: string;
  readonly logPath: string;
  readonly pid: number | undefined;
  /** Settles when the process has exited, whatever the reason. Never rejects. */
  readonly exited: Promise<ChildExit>;
  /**
   * SIGTERM, then SIGKILL after `graceMs` if it is still running. Resolves once it has exited.
   * Idempotent.
   */
  stop(graceMs: number): Promise<ChildExit>;
  /** SIGKILL now. */
  kill(): void;
}

/**
 * Starts `node [flags] main.js <args> --exit-with-parent` with `env` added, output appended to
 * `logPath`; the flags are the command's (node-flags.ts).
 */
export function spawnWeft(name: string, args: readonly string[], env: Record<string, string>, logPath: string): WeftChild {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...nodeFlagsFor(args[0]), MAIN_JS, ...args, '--exit-with-parent'], {
      env: { ...process.env, ...env },
      stdio: ['pipe', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  child.stdin?.on('error', () => undefined); // EPIPE after the child exits is expected
  let done = false;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  let stopping: Promise<ChildExit> | undefined;
  const signal = (s: NodeJS.Signals): void => {
    if (!done) child.kill(s);
  };
  return {
    name,
    logPath,
    pid: child.pid,
    exited,
    stop: (graceMs) =>
      (stopping ??= (() => {
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), graceMs);
        return exited.finally(() => clearTimeout(timer));
      })()),
    kill: () => signal('SIGKILL'),
  };
}

/** The last `n` lines of a log file (empty when unreadable), for error messages. */
export function tailLog(path: string, n: number): string[] {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
    return lines.slice(-n);
  } catch {
    return [];
  }
}

/** A CliError about `child`, with the tail of its log as details (the log dies with the temp dir). */
export function childError(child: WeftChild, what: string): CliError {
  const tail = tailLog(child.logPath, 15);
  return new CliError(`${child.name} ${what}; its log: ${child.logPath}`, {
    details: tail.length ? [`last lines of ${child.logPath}:`, ...tail.map((l) => `  ${l}`)] : [],
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(500, () => socket.destroy());
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 500, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/**
 * Polls `probe` every 100 ms until it is true. Rejects with a CliError (with the log's tail) when
 * `child` exits first or `timeoutMs` passes, and with `signal.reason` when the demo is stopped.
 */
async function waitFor(child: WeftChild, probe: () => Promise<boolean>, what: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  let exit: ChildExit | undefined;
  void child.exited.then((e) => (exit = e));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal.throwIfAborted();
    if (exit) throw childError(child, `exited (${exit.signal ?? `code ${exit.code}`}) before ${what}`);
    if (await probe()) return;
    if (Date.now() > deadline) throw childError(child, `is not ${what} after ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** Resolves once `host:port` accepts TCP connections (the control plane's xDS port). */
export function waitForPort(child: WeftChild, host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
  return waitFor(child, () => tcpOpen(host, port), `listening on ${host}:${port}`, timeoutMs, signal);
}

/** Resolves once `url` answers 200 (a sidecar's /healthz/ready). */
export function waitForReady(child: WeftChild, url: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  return waitFor(child, () => httpOk(url), `ready (${url})`, timeoutMs, signal);
}
