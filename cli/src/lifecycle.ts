/**
 * Process lifecycle for the long-running commands (`control-plane`, `sidecar`): the first
 * SIGINT/SIGTERM calls the service's graceful `close()`, a second one its `destroy()`. With
 * `--exit-with-parent` the process also stops when its stdin reaches end-of-file, which is how
 * the demo's children die with the demo even when the demo itself is SIGKILLed (the kernel closes
 * the pipe's write end with the parent; no signal is needed).
 */
import type { Logger } from '@weft/api';
import type { FlagSpec } from './args';

/** The hidden flag both long-running commands take (the demo starts its children with it). */
export const EXIT_WITH_PARENT_FLAG: FlagSpec = { name: 'exit-with-parent', type: 'boolean', hidden: true, help: 'exit when stdin closes (used by weft demo)' };

export interface Closable {
  /** Graceful; idempotent. */
  close(): Promise<void>;
  /** Immediate; idempotent. */
  destroy(): void;
  /** Resolves when the service stopped on its own (a sidecar's `POST /quitquitquit`). */
  readonly closed?: Promise<void>;
}

/**
 * Calls `onGone` once when stdin ends or errors: the parent that holds the pipe is gone. Starts
 * reading stdin (and discards what it reads). Call it before starting the service, so a parent
 * that dies during startup still takes this process with it.
 */
export function watchParent(onGone: () => void): void {
  let fired = false;
  const fire = (): void => {
    if (fired) return;
    fired = true;
    onGone();
  };
  process.stdin.on('end', fire);
  process.stdin.on('close', fire);
  process.stdin.on('error', fire);
  process.stdin.on('data', () => undefined);
  process.stdin.resume();
}

/** How long a graceful close may take after the parent died, before `destroy()`. */
const PARENT_GONE_CLOSE_MS = 5000;

export type StopReason = 'SIGINT' | 'SIGTERM' | 'parent-exited';

/**
 * Repeats this soon after the first request are the same request: under `npm start`, one
 * Ctrl-C reaches the process twice (from the terminal, and forwarded by npm).
 */
const REPEAT_IGNORE_MS = 1000;

/**
 * Resolves with the first stop request: a signal, or (after `watchParent`) the parent exiting.
 * Later requests go to `onRepeat`, except those within REPEAT_IGNORE_MS of the first. Handlers
 * stay installed so that a second Ctrl-C never falls back to Node's default (an abrupt exit
 * without cleanup).
 */
export function stopRequests(opts: { exitWithParent: boolean; onRepeat: (reason: StopReason) => void }): Promise<StopReason> {
  return new Promise((resolve) => {
    let firstAt: number | undefined;
    const on = (reason: StopReason): void => {
      if (firstAt === undefined) {
        firstAt = Date.now();
        resolve(reason);
      } else if (Date.now() - firstAt >= REPEAT_IGNORE_MS) {
        opts.onRepeat(reason);
      }
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
    if (opts.exitWithParent) watchParent(() => on('parent-exited'));
  });
}

/**
 * Starts a service and keeps it until a stop request, then closes it. Resolves to the exit
 * status: 0 after a graceful close; 1 when close() failed or a second request forced
 * `destroy()`. A stop request that arrives while `start` is still running ends the process with
 * status 1 once `start` settles (the service is destroyed, never left half-started).
 */
export async function serveUntilStopped(
  start: () => Promise<Closable>,
  opts: { log: Logger; exitWithParent: boolean; what: string },
): Promise<number> {
  let service: Closable | undefined;
  let forced = false;
  let stopping = false;
  let resolveForced: (code: number) => void = () => undefined;
  const forcedExit = new Promise<number>((r) => (resolveForced = r));

  const stop = stopRequests({
    exitWithParent: opts.exitWithParent,
    onRepeat: (reason) => {
      if (forced) return;
      forced = true;
      opts.log.warn(`${opts.what}: ${reason} again, stopping now`);
      service?.destroy();
      resolveForced(1);
    },
  });

  // Races startup against a stop request so that Ctrl-C during startup is not ignored.
  const started = start().then((s) => {
    service = s;
    if (stopping) s.destroy();
    return s;
  });
  const first = await Promise.race([stop.then((reason) => ({ reason })), started.then((s) => ({ s }))]);
  if ('reason' in first) {
    stopping = true;
    opts.log.info(`${opts.what}: ${first.reason} during startup, stopping`);
    await started.catch(() => undefined);
    return 1;
  }

  // A service may also stop itself (a Job's app calling the sidecar's /quitquitquit).
  const ended = first.s.closed?.then(() => 'self' as const) ?? new Promise<never>(() => undefined);
  const reason = await Promise.race([stop, ended]);
  if (reason === 'self') {
    opts.log.info(`${opts.what}: stopped on request, exiting`);
    return 0;
  }
  opts.log.info(
    reason === 'parent-exited'
      ? `${opts.what}: parent process exited (stdin closed), shutting down`
      : `${opts.what}: ${reason}, shutting down gracefully (again to force)`,
  );
  // Nobody is left to send the second signal when the parent is gone: bound the close ourselves.
  if (reason === 'parent-exited') {
    setTimeout(() => {
      first.s.destroy();
      resolveForced(1);
    }, PARENT_GONE_CLOSE_MS).unref();
  }
  const closed = first.s.close().then(
    () => 0,
    (err: unknown) => {
      opts.log.error(`${opts.what}: graceful close failed`, { err });
      first.s.destroy();
      return 1;
    },
  );
  return Promise.race([closed, forcedExit]);
}
