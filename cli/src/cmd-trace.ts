/**
 * `weft trace`: receives OTLP/HTTP from the sidecars itself (local mode and the demo: point the
 * control plane's `--tracing-endpoint` at it) and prints each trace as a waterfall in the terminal
 * once it is complete (no new span of it for `--quiet`): services, spans, timings and status.
 * With TRACE_ID it waits for that trace, prints it and exits 0.
 */
import { createLogger, parseDuration } from '@weft/api';
import { parseHostPort, parseInteger, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { UsageError } from './errors';
import { serveUntilStopped } from './lifecycle';

export const DEFAULT_TRACE_LISTEN = '127.0.0.1:4318';

async function run(args: ParsedArgs): Promise<number> {
  const listen = parseHostPort(stringFlag(args, 'listen') ?? DEFAULT_TRACE_LISTEN, '--listen');
  const quietFlag = stringFlag(args, 'quiet');
  const quietMs = quietFlag === undefined ? 2000 : parseDuration(quietFlag);
  if (quietMs === undefined || quietMs <= 0) throw new UsageError(`--quiet must be a positive duration such as 2s or 500ms, got "${quietFlag}"`);
  const countFlag = stringFlag(args, 'count');
  const count = countFlag === undefined ? undefined : parseInteger(countFlag, '--count', 1, 1_000_000);
  const only = args.positionals[0]?.toLowerCase();
  if (only !== undefined && !/^[0-9a-f]{32}$/.test(only)) throw new UsageError(`TRACE_ID must be 32 hex digits (as in traceparent), got "${args.positionals[0]}"`);
  const want = only !== undefined ? 1 : count;
  const colon = listen.lastIndexOf(':');
  const log = createLogger({ component: 'trace' });

  return serveUntilStopped(
    async () => {
      // Loaded here: the weft binary is shared with the sidecar, which must not pay for these.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { startOtlpReceiver, TraceCollector } = require('./trace-otlp') as typeof import('./trace-otlp');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { renderWaterfall } = require('./trace-waterfall') as typeof import('./trace-waterfall');
      let shown = 0;
      let markDone: () => void = () => undefined;
      const done = new Promise<void>((r) => (markDone = r));
      const collector = new TraceCollector(quietMs, (spans) => {
        if (want !== undefined && shown >= want) return;
        process.stdout.write(`${renderWaterfall(spans).join('\n')}\n\n`);
        if (want !== undefined && ++shown >= want) markDone();
      }, only);
      const receiver = await startOtlpReceiver(listen.slice(0, colon), Number(listen.slice(colon + 1)), (spans) => collector.add(spans));
      process.stdout.write(
        `weft trace: receiving OTLP/HTTP (protobuf) on ${receiver.url}\n` +
          `  point the mesh at it: weft control-plane ... --tracing-endpoint ${receiver.url} [--tracing-sampling 100]\n` +
          (only ? `  waiting for trace ${only}\n\n` : `  each trace is shown once no new span of it arrived for ${quietMs} ms; Ctrl-C stops\n\n`),
      );
      return {
        closed: done.then(() => receiver.close()).finally(() => collector.close()),
        close: async () => {
          collector.sweep(Infinity); // what has arrived is shown, complete or not
          collector.close();
          await receiver.close();
        },
        destroy: () => {
          collector.close();
          receiver.destroy();
        },
      };
    },
    { log, exitWithParent: false, what: 'weft trace' },
  );
}

export const traceCommand: Command = {
  name: 'trace',
  summary: 'receive OTLP from the sidecars and show traces as a waterfall',
  usage: 'weft trace [TRACE_ID] [--listen HOST:PORT] [--quiet DURATION] [--count N]',
  description: [
    'Receives OpenTelemetry spans over OTLP/HTTP (protobuf, POST /v1/traces) on --listen and\n' +
      'prints each trace as a waterfall: its spans as a tree (service, client/server, name), the\n' +
      'status (HTTP or gRPC; ERR for errors) and a time bar with the duration. A trace is shown once\n' +
      'no new span of it arrived for --quiet. Point the mesh at it with\n' +
      '`weft control-plane --tracing-endpoint http://127.0.0.1:4318/v1/traces` (the demo does).',
    'With TRACE_ID (32 hex digits, the second field of a traceparent) it waits for that trace,\n' +
      'prints it and exits 0. docs/tracing.md has the details.',
  ],
  flags: [
    { name: 'listen', type: 'string', placeholder: 'HOST:PORT', help: `where to receive OTLP/HTTP (default ${DEFAULT_TRACE_LISTEN}, the OTLP/HTTP port)` },
    { name: 'quiet', type: 'string', placeholder: 'DURATION', help: 'show a trace once no span of it arrived for this long (default 2s)' },
    { name: 'count', type: 'string', placeholder: 'N', help: 'exit 0 after showing N traces' },
  ],
  maxPositionals: 1,
  available: true,
  run,
};
