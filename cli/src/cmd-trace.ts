/**
 * `weft trace`: shows traces as a waterfall in the terminal. Comes with observability (issue 6);
 * for now only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const traceCommand: Command = notYetCommand({
  name: 'trace',
  summary: 'view traces as a waterfall (issue 6)',
  usage: 'weft trace [TRACE_ID]',
  description: [
    'Receives OTLP from the sidecars and shows each trace as a waterfall: services, spans,\n' +
      'timings and status.',
    'Not available in this version yet: it comes with observability (issue 6).',
  ],
  flags: [],
  maxPositionals: 1,
});
