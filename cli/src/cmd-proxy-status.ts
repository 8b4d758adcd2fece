/**
 * `weft proxy-status`: for every proxy connected to the control plane, per resource type, whether
 * it acknowledged what it was last sent (SYNCED), has not answered yet (STALE), or rejected it
 * (NACKED, with the reason). Reads the control plane's `/debug/syncz`.
 */
import { parseHostPort, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { formatTable, getJson } from './http-json';

interface TypeSync {
  sentVersion?: string;
  ackedVersion?: string;
  synced: boolean;
  lastNack?: { version: string; detail: string; at: string };
}
interface NodeSync {
  node: string;
  kind: string;
  protocol: string;
  types: Record<string, TypeSync>;
}

const COLUMNS: [string, string][] = [['CDS', 'Cluster'], ['EDS', 'ClusterLoadAssignment'], ['LDS', 'Listener'], ['RDS', 'RouteConfiguration']];

/** `frontend.shop` for a sidecar's node id, the id itself for anything else. */
export function proxyName(nodeId: string): string {
  const parts = nodeId.split('~');
  return parts.length === 4 && parts[0] === 'sidecar' ? parts[2]! : nodeId;
}

function state(t: TypeSync | undefined): string {
  if (!t) return '-';
  // A version rejected once and acknowledged when offered again is in sync.
  if (t.synced) return 'SYNCED';
  return t.lastNack && t.lastNack.version === t.sentVersion ? 'NACKED' : 'STALE';
}

export function renderStatus(nodes: readonly NodeSync[]): string {
  if (nodes.length === 0) return 'no proxy is connected to this control plane\n';
  const sorted = [...nodes].sort((a, b) => proxyName(a.node).localeCompare(proxyName(b.node)));
  const rows = sorted.map((n) => [proxyName(n.node), n.kind, n.protocol, ...COLUMNS.map(([, t]) => state(n.types[t]))]);
  let out = formatTable(['NAME', 'KIND', 'XDS', ...COLUMNS.map(([c]) => c)], rows);
  for (const n of sorted) {
    for (const [col, t] of COLUMNS) {
      const s = n.types[t];
      if (state(s) === 'NACKED') out += `\n${proxyName(n.node)} rejected ${col} ${s!.lastNack!.version} at ${s!.lastNack!.at}:\n  ${s!.lastNack!.detail}\n`;
    }
  }
  return out;
}

async function run(args: ParsedArgs): Promise<number> {
  const address = parseHostPort(stringFlag(args, 'control-plane') ?? '127.0.0.1:15014', '--control-plane');
  const nodes = (await getJson(`http://${address}/debug/syncz`, `the control plane at ${address}`)) as NodeSync[];
  process.stdout.write(renderStatus(nodes));
  return 0;
}

export const proxyStatusCommand: Command = {
  name: 'proxy-status',
  summary: 'what each proxy was sent and acknowledged',
  usage: 'weft proxy-status [--control-plane HOST:PORT]',
  description: [
    'Lists every proxy connected to the control plane with, per resource type, whether it\n' +
      'acknowledged the version it was last sent (SYNCED), has not answered yet (STALE) or\n' +
      'rejected it (NACKED); the reason of each rejection follows the table.',
  ],
  flags: [{ name: 'control-plane', type: 'string', placeholder: 'HOST:PORT', help: 'the control plane\'s debug address (default 127.0.0.1:15014)' }],
  available: true,
  run,
};
