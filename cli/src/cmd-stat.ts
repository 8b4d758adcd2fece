/**
 * `weft stat`: golden metrics per workload, like `linkerd viz stat`, without a Prometheus: it
 * finds the sidecars through the control plane (`/debug/syncz`), scrapes each sidecar's `/metrics`
 * twice, `--window` seconds apart (a sidecar that does not answer counts as not scraped), and computes from the inbound request series (what each
 * workload served) the success rate, requests per second and latency percentiles over that window,
 * plus the TCP connections open at the end.
 *
 * Success follows Linkerd: a response is a failure when its HTTP status is 5xx (or there was no
 * response) or its gRPC status is not OK.
 */
import { parseHostPort, parseInteger, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { CliError } from './errors';
import { formatTable, getJson } from './http-json';
import { deltas, histogramQuantile, parsePromText, type Sample } from './prom-text';

interface NodeSync {
  node: string;
  kind: string;
}

/** One sidecar: where its metrics are and which pod it serves. */
export interface ScrapeTarget {
  readonly pod: string;
  readonly namespace: string;
  readonly ip: string;
}

export interface WorkloadStat {
  readonly namespace: string;
  readonly workload: string;
  /** Sidecars scraped for it / pods seen. */
  readonly meshed: string;
  /** 0–1; NaN without requests. */
  readonly success: number;
  readonly rps: number;
  /** Seconds; NaN without requests. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly tcpOpen: number;
}

/** The workload of a pod without metrics to say: its name without the last `-xxx` part (as the control plane names workloads without an `app` label). */
export function workloadOfPod(pod: string): string {
  const i = pod.lastIndexOf('-');
  return i > 0 ? pod.slice(0, i) : pod;
}

const failed = (s: Sample): boolean => {
  const code = Number(s.labels.response_code ?? '0');
  const grpc = s.labels.grpc_status ?? '';
  return code === 0 || code >= 500 || (grpc !== '' && grpc !== '0');
};

/**
 * Golden metrics from two scrapes per sidecar (`before`, `after`, `windowS` apart). Pure: the
 * network part is `run`'s.
 */
export function computeStats(targets: readonly ScrapeTarget[], before: readonly (Sample[] | undefined)[], after: readonly (Sample[] | undefined)[], windowS: number): WorkloadStat[] {
  interface Acc { namespace: string; workload: string; pods: number; scraped: number; total: number; fails: number; buckets: Map<number, number>; tcpOpen: number }
  const acc = new Map<string, Acc>();
  targets.forEach((t, i) => {
    const now = after[i];
    const d = now ? deltas(before[i] ?? [], now) : [];
    const inbound = d.filter((s) => s.labels.direction === 'inbound');
    // The workload as the control plane named it: on the series the sidecar served, else on those
    // it sent (its own source_workload), else from the pod name.
    const workload = inbound.find((s) => s.labels.destination_workload)?.labels.destination_workload
      ?? d.find((s) => s.labels.direction === 'outbound' && s.labels.source_workload)?.labels.source_workload
      ?? workloadOfPod(t.pod);
    const key = `${t.namespace}/${workload}`;
    let a = acc.get(key);
    if (!a) acc.set(key, (a = { namespace: t.namespace, workload, pods: 0, scraped: 0, total: 0, fails: 0, buckets: new Map(), tcpOpen: 0 }));
    a.pods++;
    if (!now) return;
    a.scraped++;
    for (const s of inbound) {
      if (s.name === 'weft_requests_total') {
        a.total += s.value;
        if (failed(s)) a.fails += s.value;
      } else if (s.name === 'weft_request_duration_seconds_bucket') {
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        a.buckets.set(le, (a.buckets.get(le) ?? 0) + s.value);
      }
    }
    const total = (name: string): number => now.filter((s) => s.name === name && s.labels.direction === 'inbound').reduce((x, s) => x + s.value, 0);
    a.tcpOpen += total('weft_tcp_connections_opened_total') - total('weft_tcp_connections_closed_total');
  });
  return [...acc.values()]
    .sort((x, y) => x.namespace.localeCompare(y.namespace) || x.workload.localeCompare(y.workload))
    .map((a) => ({
      namespace: a.namespace,
      workload: a.workload,
      meshed: `${a.scraped}/${a.pods}`,
      success: a.total ? (a.total - a.fails) / a.total : NaN,
      rps: a.total / windowS,
      p50: histogramQuantile(0.5, a.buckets),
      p95: histogramQuantile(0.95, a.buckets),
      p99: histogramQuantile(0.99, a.buckets),
      tcpOpen: a.tcpOpen,
    }));
}

export function renderStats(stats: readonly WorkloadStat[], windowS: number): string {
  if (stats.length === 0) return 'no sidecar is connected to this control plane\n';
  const pct = (v: number): string => (Number.isNaN(v) ? '-' : `${(v * 100).toFixed(2)}%`);
  const ms = (v: number): string => (Number.isNaN(v) ? '-' : `${Math.round(v * 1000)}ms`);
  const rows = stats.map((s) => [s.namespace, s.workload, s.meshed, pct(s.success), `${s.rps.toFixed(1)}rps`, ms(s.p50), ms(s.p95), ms(s.p99), String(s.tcpOpen)]);
  return formatTable(['NAMESPACE', 'WORKLOAD', 'MESHED', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'TCP_CONN'], rows) +
    `(inbound requests over the last ${windowS} s; MESHED: sidecars scraped / pods)\n`;
}

/** The sidecars the control plane knows, from their node ids (`sidecar~IP~POD.NS~…`). */
export function scrapeTargets(nodes: readonly NodeSync[], namespace?: string): ScrapeTarget[] {
  return nodes.flatMap((n) => {
    const parts = n.node.split('~');
    if (n.kind !== 'sidecar' || parts.length !== 4) return [];
    const [pod, ns] = [parts[2]!.slice(0, parts[2]!.lastIndexOf('.')), parts[2]!.slice(parts[2]!.lastIndexOf('.') + 1)];
    if (namespace !== undefined && ns !== namespace) return [];
    return [{ pod, namespace: ns, ip: parts[1]! }];
  });
}

async function scrape(t: ScrapeTarget, port: number): Promise<Sample[] | undefined> {
  try {
    const res = await fetch(`http://${t.ip}:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    return parsePromText(await res.text());
  } catch {
    return undefined;
  }
}

async function run(args: ParsedArgs): Promise<number> {
  const address = parseHostPort(stringFlag(args, 'control-plane') ?? '127.0.0.1:15014', '--control-plane');
  const port = parseInteger(stringFlag(args, 'metrics-port') ?? '15020', '--metrics-port', 1, 65535);
  const windowS = parseInteger(stringFlag(args, 'window') ?? '5', '--window', 1, 600);
  const nodes = (await getJson(`http://${address}/debug/syncz`, `the control plane at ${address}`)) as NodeSync[];
  const targets = scrapeTargets(nodes, stringFlag(args, 'namespace'));
  const before = await Promise.all(targets.map((t) => scrape(t, port)));
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const after = await Promise.all(targets.map((t) => scrape(t, port)));
  if (targets.length && after.every((a) => a === undefined)) {
    throw new CliError(`no sidecar answered on its metrics port ${port} (a captured pod's sidecar listens on 0.0.0.0:15020; in local mode on POD_IP)`);
  }
  process.stdout.write(renderStats(computeStats(targets, before, after, windowS), windowS));
  return 0;
}

export const statCommand: Command = {
  name: 'stat',
  summary: 'golden metrics per workload: success rate, requests/s, latency',
  usage: 'weft stat [-n NAMESPACE] [--window SECONDS] [--control-plane HOST:PORT] [--metrics-port N]',
  description: [
    'Shows, per workload, the success rate, requests per second and p50/p95/p99 latency of the\n' +
      'requests it served, and its open TCP connections, like `linkerd viz stat`. It finds the\n' +
      'sidecars through the control plane and reads each sidecar\'s Prometheus metrics twice,\n' +
      '--window seconds apart (no Prometheus needed).',
    'A failure is a 5xx (or no response) or a gRPC status other than OK.',
  ],
  flags: [
    { name: 'namespace', short: 'n', type: 'string', placeholder: 'NAMESPACE', help: 'only this namespace' },
    { name: 'window', type: 'string', placeholder: 'SECONDS', help: 'the measuring window (default 5)' },
    { name: 'control-plane', type: 'string', placeholder: 'HOST:PORT', help: 'the control plane\'s debug address (default 127.0.0.1:15014)' },
    { name: 'metrics-port', type: 'string', placeholder: 'N', help: 'the sidecars\' metrics port (default 15020)' },
  ],
  available: true,
  run,
};
