/**
 * `weft inject -f FILE`: prints the manifests with the sidecar injected, exactly as the
 * admission webhook would. Comes with issue 8 (Kubernetes); for now only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const injectCommand: Command = notYetCommand({
  name: 'inject',
  summary: 'print manifests with the sidecar injected (issue 8)',
  usage: 'weft inject -f FILE',
  description: [
    'Prints the Kubernetes manifests in FILE ("-" for stdin) with the Weft sidecar injected into\n' +
      'every pod template, as the injection webhook would.',
    'Not available in this version yet: it comes with Kubernetes mode (issue 8).',
  ],
  flags: [{ name: 'filename', short: 'f', type: 'string', placeholder: 'FILE', help: 'the manifests to inject ("-" reads stdin)' }],
});
