/**
 * `weft proxy-status`: for every connected proxy, what the control plane sent and whether it was
 * acknowledged. A later version brings it; for now only its help exists.
 */
import { notYetCommand, type Command } from './command';

export const proxyStatusCommand: Command = notYetCommand({
  name: 'proxy-status',
  summary: 'what each proxy was sent and acknowledged',
  usage: 'weft proxy-status [--control-plane HOST:PORT]',
  description: [
    'Lists every proxy connected to the control plane with, per resource type, the version it\n' +
      'was sent and whether it acknowledged (SYNCED), is still pending (STALE) or rejected it\n' +
      '(NACKED, with the reason).',
    'Not available in this version yet.',
  ],
  flags: [{ name: 'control-plane', type: 'string', placeholder: 'HOST:PORT', help: 'the control plane\'s debug address (default 127.0.0.1:15014)' }],
});
