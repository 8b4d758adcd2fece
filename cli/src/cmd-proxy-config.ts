/**
 * `weft proxy-config POD [listeners|routes|clusters|endpoints|secrets]`: the configuration one
 * sidecar runs, read from its own admin `/config_dump` (found through the control plane, which
 * knows every connected sidecar's pod IP).
 */
import { X509Certificate } from 'node:crypto';
import { parseHostPort, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { CliError, UsageError } from './errors';
import { formatTable, getJson } from './http-json';
import { proxyName } from './cmd-proxy-status';

type Obj = Record<string, any>;
const SECTIONS = ['listeners', 'routes', 'clusters', 'endpoints', 'secrets'] as const;
type Section = (typeof SECTIONS)[number];

function routeAction(a: Obj): string {
  switch (a.kind) {
    case 'cluster': return a.cluster;
    case 'weighted': return a.clusters.map((c: Obj) => `${c.cluster} ${Math.round((100 * c.weight) / a.totalWeight)}%`).join(', ');
    case 'direct-response': return `respond ${a.status}`;
    default: return JSON.stringify(a);
  }
}

function routeMatch(m: Obj): string {
  const path = m.path.kind === 'prefix' ? `prefix ${m.path.value}` : m.path.kind === 'exact' ? `path ${m.path.value}` : `regex ${m.path.value}`;
  const headers = (m.headers ?? []).map((h: Obj) => `${h.invert ? '!' : ''}${h.name}${h.kind === 'present' ? '' : `=${h.kind === 'exact' ? '' : `${h.kind}:`}${h.value}`}`);
  return [path, ...headers].join(' ');
}

/** The table for one section of a sidecar's `/config_dump`. */
export function renderSection(dump: Obj, section: Section): string {
  const cfg = dump.config ?? {};
  const values = (o: Obj | undefined): Obj[] => Object.values(o ?? {});
  switch (section) {
    case 'listeners': {
      // HTTP listeners (with any TCP chains beside their HTTP one), then TCP-only listeners.
      const tcpChains = (d: Obj | undefined): string[] =>
        [...(d?.chains ?? []), ...(d?.defaultChain ? [d.defaultChain] : [])].filter((c: Obj) => c.filter.kind === 'tcp').map((c: Obj) => {
          const t = c.filter.proxy.target;
          return `tcp ${t.kind === 'cluster' ? t.cluster : t.clusters.map((w: Obj) => w.cluster).join('+')}`;
        });
      const summary = (items: string[]): string => (items.length > 2 ? `${items[0]} +${items.length - 1}` : items.join(', '));
      const http = values(cfg.listeners).map((l) => {
        const routes = l.routes.kind === 'rds' ? `RDS ${l.routes.name}` : `inline ${l.routes.table.name}`;
        return [l.name, `${l.address}:${l.port}`, l.direction, summary([routes, ...tcpChains(l.connections)])];
      });
      const tcp = values(cfg.tcpListeners).map((l) => [l.name, `${l.address}:${l.port}`, l.direction, summary(tcpChains(l.connections))]);
      return formatTable(['NAME', 'ADDRESS', 'DIRECTION', 'ROUTES / TCP'], [...http, ...tcp]);
    }
    case 'routes': {
      const tables = [...values(cfg.routeTables), ...values(cfg.listeners).filter((l) => l.routes.kind === 'inline').map((l) => l.routes.table)];
      const rows: string[][] = [];
      for (const t of tables) for (const v of t.virtualHosts) for (const r of v.routes) {
        rows.push([t.name, v.name, v.domains.length > 2 ? `${v.domains[0]} +${v.domains.length - 1}` : v.domains.join(','), `${r.name}: ${routeMatch(r.match)}`, routeAction(r.action)]);
      }
      return formatTable(['TABLE', 'VIRTUAL HOST', 'DOMAINS', 'ROUTE', 'TO'], rows);
    }
    case 'clusters':
      return formatTable(['NAME', 'TYPE', 'LB', 'ENDPOINTS'], values(cfg.clusters).map((c) => {
        const eps = c.discovery === 'EDS' ? cfg.endpoints?.[c.edsServiceName] ?? [] : c.staticEndpoints;
        return [c.name, c.discovery, c.lbPolicy, String(eps.length)];
      }));
    case 'endpoints': {
      const rows: string[][] = [];
      for (const [cluster, eps] of Object.entries(cfg.endpoints ?? {}) as [string, Obj[]][]) {
        for (const e of eps) rows.push([cluster, `${e.address}:${e.port}`, e.healthy ? 'HEALTHY' : 'UNHEALTHY', e.targetPort ? `via sidecar to :${e.targetPort}` : 'direct']);
      }
      return formatTable(['CLUSTER', 'ENDPOINT', 'STATUS', 'PATH'], rows);
    }
    case 'secrets': {
      // The workload certificate (Istio's SDS name `default`) and the trust bundles; never a key.
      const rows: string[][] = [];
      const id = dump.identity as Obj | null | undefined;
      if (id) {
        const leaf = certificates(id.chainPem)[0];
        rows.push(['default', 'workload certificate', id.spiffeId, id.serial, id.notAfter, leaf ? `issuer ${oneLine(leaf.issuer)}` : '']);
      } else if (id === null) {
        rows.push(['default', 'workload certificate', '(not issued yet)', '', '', '']);
      }
      for (const b of values(cfg.trustBundles)) {
        for (const c of certificates(b.caPem)) rows.push([b.name, 'trust bundle root', oneLine(c.subject), c.serialNumber, new Date(c.validTo).toISOString(), '']);
      }
      if (rows.length === 0) return 'no secrets: this sidecar runs without identity (no WEFT_TOKEN_PATH) and has no trust bundle\n';
      return formatTable(['NAME', 'TYPE', 'IDENTITY / SUBJECT', 'SERIAL', 'EXPIRES', 'NOTE'], rows);
    }
  }
}

function certificates(pem: string | undefined): X509Certificate[] {
  return (pem?.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}

function oneLine(dn: string | undefined): string {
  return (dn ?? '').split('\n').filter(Boolean).join(', ') || '(empty)';
}

async function run(args: ParsedArgs): Promise<number> {
  const [pod, sectionArg] = args.positionals;
  if (!pod) throw new UsageError('a POD name is required');
  if (sectionArg && !SECTIONS.includes(sectionArg as Section)) throw new UsageError(`unknown section "${sectionArg}": one of ${SECTIONS.join(', ')}`);
  const output = stringFlag(args, 'output') ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`--output must be table or json, got "${output}"`);
  const namespace = stringFlag(args, 'namespace') ?? 'default';
  const cp = parseHostPort(stringFlag(args, 'control-plane') ?? '127.0.0.1:15014', '--control-plane');
  const nodes = (await getJson(`http://${cp}/debug/syncz`, `the control plane at ${cp}`)) as { node: string }[];
  const node = nodes.find((n) => proxyName(n.node) === `${pod}.${namespace}`);
  if (!node) throw new CliError(`no sidecar of pod ${namespace}/${pod} is connected to the control plane at ${cp}`);
  const ip = node.node.split('~')[1]!;
  const admin = stringFlag(args, 'admin-port') ?? '15000';
  const dump = (await getJson(`http://${ip}:${admin}/config_dump`, `the sidecar of ${namespace}/${pod}`)) as Obj;
  if (output === 'json') {
    const part = sectionArg ? sectionJson(dump, sectionArg as Section) : dump;
    process.stdout.write(JSON.stringify(part, null, 2) + '\n');
  } else {
    const sections = sectionArg ? [sectionArg as Section] : SECTIONS.filter((s) => s !== 'secrets');
    process.stdout.write(sections.map((s) => (sections.length > 1 ? `${s.toUpperCase()}\n` : '') + renderSection(dump, s)).join('\n'));
  }
  return 0;
}

function sectionJson(dump: Obj, section: Section): unknown {
  const cfg = dump.config ?? {};
  const secrets = { ...(dump.identity !== undefined ? { default: dump.identity } : {}), ...cfg.trustBundles };
  return { listeners: { ...cfg.listeners, ...cfg.tcpListeners }, routes: cfg.routeTables, clusters: cfg.clusters, endpoints: cfg.endpoints, secrets }[section];
}

export const proxyConfigCommand: Command = {
  name: 'proxy-config',
  summary: 'the config one proxy runs (listeners, routes, clusters, ...)',
  usage: 'weft proxy-config POD [listeners|routes|clusters|endpoints|secrets] [-n NAMESPACE] [-o table|json]',
  description: [
    'Shows the configuration the sidecar of POD runs, read from its admin /config_dump: all of\n' +
      'it, or one of listeners, routes, clusters, endpoints, secrets. The control plane tells\n' +
      'where the sidecar is (its pod IP).',
  ],
  flags: [
    { name: 'namespace', short: 'n', type: 'string', placeholder: 'NAMESPACE', help: 'the pod\'s namespace (default "default")' },
    { name: 'output', short: 'o', type: 'string', placeholder: 'FORMAT', help: 'table | json (default table)' },
    { name: 'control-plane', type: 'string', placeholder: 'HOST:PORT', help: 'the control plane\'s debug address (default 127.0.0.1:15014)' },
    { name: 'admin-port', type: 'string', placeholder: 'N', help: 'the sidecar\'s admin port (default 15000)' },
  ],
  maxPositionals: 2,
  available: true,
  run,
};
