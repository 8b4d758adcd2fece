/**
 * `weft check`: pre- and post-install checks of a cluster. A later version brings it; for now
 * only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const checkCommand: Command = notYetCommand({
  name: 'check',
  summary: 'pre- and post-install checks',
  usage: 'weft check [--pre]',
  description: [
    'Checks that a cluster can run Weft (--pre) or that an installed Weft is healthy: CRDs,\n' +
      'control plane, webhooks, and every sidecar connected and in sync.',
    'Not available in this version yet (it needs Kubernetes mode, issue 8).',
  ],
  flags: [{ name: 'pre', type: 'boolean', help: 'run only the pre-install checks' }],
});
