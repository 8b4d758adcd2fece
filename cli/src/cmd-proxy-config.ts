/**
 * `weft proxy-config POD [listeners|routes|clusters|endpoints|secrets]`: the configuration one
 * proxy runs. A later version brings it; for now only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const proxyConfigCommand: Command = notYetCommand({
  name: 'proxy-config',
  summary: 'the config one proxy runs (listeners, routes, clusters, ...)',
  usage: 'weft proxy-config POD [listeners|routes|clusters|endpoints|secrets] [-n NAMESPACE]',
  description: [
    'Shows the configuration the sidecar of POD runs, read from its admin /config_dump: all of\n' +
      'it, or one of listeners, routes, clusters, endpoints, secrets.',
    'Not available in this version yet. Meanwhile, in local mode, the same data is at\n' +
      'http://<pod IP>:15000/config_dump.',
  ],
  flags: [
    { name: 'namespace', short: 'n', type: 'string', placeholder: 'NAMESPACE', help: 'the pod\'s namespace (default "default")' },
    { name: 'output', short: 'o', type: 'string', placeholder: 'FORMAT', help: 'table | json (default table)' },
  ],
  maxPositionals: 2,
});
