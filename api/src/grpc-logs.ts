/**
 * grpc-js writes its own log lines to stderr (`E No address added ...`). Weft's processes log one
 * structured line per event, so grpc-js's lines are routed into our logger at debug level, where
 * `WEFT_LOG_LEVEL=debug` shows them. `GRPC_VERBOSITY`/`GRPC_TRACE` keep working for deep dives.
 */
import type * as GrpcJs from '@grpc/grpc-js';
import type { Logger } from './log';

let routed = false;

/** Idempotent: the first logger given receives grpc-js's lines for the life of the process. */
export function routeGrpcLogs(log: Logger): void {
  if (routed || process.env.GRPC_VERBOSITY || process.env.GRPC_TRACE) return;
  routed = true;
  // Required here, not at the top: every process loads @weft/api, and the sidecar, which has no
  // grpc-js, must not pay for it (docs/performance.md, memory).
  const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
  const write = (...args: unknown[]): void => log.debug('grpc-js', { message: args.map(String).join(' ').trim() });
  grpc.setLogger({ error: write, info: write, debug: write } as unknown as Partial<Console>);
}
