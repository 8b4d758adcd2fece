/**
 * `weft stat`: golden metrics per workload, read from the sidecars' metrics. Comes with
 * observability (issue 6); for now only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const statCommand: Command = notYetCommand({
  name: 'stat',
  summary: 'golden metrics per workload (issue 6)',
  usage: 'weft stat [-n NAMESPACE]',
  description: [
    'Shows success rate, requests per second and p50/p95/p99 latency per workload, from the\n' +
      'sidecars\' Prometheus metrics.',
    'Not available in this version yet: it comes with observability (issue 6).',
  ],
  flags: [{ name: 'namespace', short: 'n', type: 'string', placeholder: 'NAMESPACE', help: 'only this namespace' }],
});
