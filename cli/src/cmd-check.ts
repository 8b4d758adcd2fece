/**
 * `weft check`: is the running mesh healthy? Asks the control plane's debug port and each
 * connected sidecar's admin port, and (with `--kubeconfig`) the API server (`check-kube.ts`: the
 * pre-install checks with `--pre`, else the installed mesh's), and prints one line per finding, as
 * `linkerd check` does:
 *
 *   control plane   reachable; every proxy in sync (a NACK is a failure, an unanswered push a warning)
 *   policies        every policy Accepted; no diagnostics
 *   certificates    the CA's roots and signer far from expiry (FIELD-NOTES 13: warned `--warn-days`
 *                   ahead, 30 by default); each sidecar holds a valid workload certificate, renewed
 *                   on time, and trusts the CA's active root
 *
 * Exit 1 when anything failed, 0 otherwise (warnings included).
 */
import { X509Certificate } from 'node:crypto';
import { booleanFlag, parseHostPort, parseInteger, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { UsageError } from './errors';
import { getJson } from './http-json';
import { proxyName } from './cmd-proxy-status';
import { installedChecks, preInstallChecks } from './check-kube';
import { checkNamespace, loadKubeClient } from './kube-load';

type Level = 'ok' | 'warn' | 'fail';
export interface Finding {
  readonly level: Level;
  readonly text: string;
  /** What to do about it, on the next line. */
  readonly hint?: string;
}
export interface Section {
  readonly title: string;
  readonly findings: Finding[];
}

interface TypeSync {
  sentVersion?: string;
  synced: boolean;
  lastNack?: { version: string; detail: string };
}
interface NodeSync {
  node: string;
  kind: string;
  types: Record<string, TypeSync>;
}
interface PolicyStatus {
  key: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
}
interface Diagnostic {
  file: string;
  line?: number;
  severity: string;
  reason: string;
}
interface CertSummary {
  subject: string;
  notAfter: string;
  notBefore: string;
}
interface CaDescription {
  operator: boolean;
  signer: CertSummary & { isRoot: boolean };
  roots: (CertSummary & { active: boolean })[];
}
interface SidecarDump {
  identity?: { spiffeId: string; serial: string; notBefore: string; notAfter: string } | null;
  config?: { trustBundles?: Record<string, { caPem: string }> };
}

const DAY_MS = 86_400_000;
/** A workload certificate past this share of its lifetime should have been renewed (renewal is at 80% ± 5%). */
const RENEWAL_OVERDUE = 0.9;

export interface CheckOptions {
  /** The control plane's debug address (host:port). */
  readonly controlPlane: string;
  readonly adminPort: number;
  readonly warnDays: number;
  readonly now?: number;
}

/** Runs every check. Never throws for what it finds; an unreachable control plane is a failure. */
export async function runChecks(o: CheckOptions): Promise<Section[]> {
  const now = o.now ?? Date.now();
  const cp: Section = { title: 'control plane', findings: [] };
  const base = `http://${o.controlPlane}`;
  const what = `the control plane at ${o.controlPlane}`;
  let nodes: NodeSync[];
  try {
    nodes = (await getJson(`${base}/debug/syncz`, what)) as NodeSync[];
  } catch (e) {
    cp.findings.push({ level: 'fail', text: (e as Error).message, hint: 'is `weft control-plane` running? --control-plane takes its --debug-address' });
    return [cp];
  }
  cp.findings.push({ level: 'ok', text: `reachable at ${o.controlPlane}` });
  cp.findings.push(...syncFindings(nodes));

  const policies: Section = { title: 'policies', findings: [] };
  const [status, diagnostics] = await Promise.all([
    getJson(`${base}/debug/policies`, what) as Promise<PolicyStatus[]>,
    getJson(`${base}/debug/diagnostics`, what) as Promise<Diagnostic[]>,
  ]);
  policies.findings.push(...policyFindings(status, diagnostics));

  const certs: Section = { title: 'certificates', findings: [] };
  const ca = await caDescription(base, what);
  if (!ca) certs.findings.push({ level: 'warn', text: 'the control plane runs without a CA (--no-ca): no workload identity, no mTLS' });
  else certs.findings.push(...caFindings(ca, now, o.warnDays));
  const sidecars = nodes.filter((n) => n.kind === 'sidecar');
  const dumps = await Promise.all(sidecars.map((n) => sidecarDump(n.node, o.adminPort)));
  sidecars.forEach((n, i) => certs.findings.push(workloadFinding(proxyName(n.node), dumps[i]!, ca, now)));
  return [cp, policies, certs];
}

function syncFindings(nodes: readonly NodeSync[]): Finding[] {
  if (nodes.length === 0) return [{ level: 'warn', text: 'no proxy is connected' }];
  const out: Finding[] = [];
  let synced = 0;
  for (const n of nodes) {
    const types = Object.entries(n.types);
    const nacked = types.filter(([, t]) => !t.synced && t.lastNack && t.lastNack.version === t.sentVersion);
    const stale = types.filter(([, t]) => !t.synced && !(t.lastNack && t.lastNack.version === t.sentVersion));
    for (const [type, t] of nacked) {
      out.push({ level: 'fail', text: `${proxyName(n.node)} rejected ${type} ${t.sentVersion}: ${t.lastNack!.detail}`, hint: 'it keeps its last good config; fix the policy named in the reason' });
    }
    if (stale.length) out.push({ level: 'warn', text: `${proxyName(n.node)} has not acknowledged ${stale.map(([t]) => t).join(', ')} yet`, hint: 'run again in a few seconds; `weft proxy-status` shows each type' });
    if (!nacked.length && !stale.length) synced++;
  }
  if (synced) out.unshift({ level: 'ok', text: `${synced} of ${nodes.length} ${nodes.length === 1 ? 'proxy' : 'proxies'} in sync` });
  return out;
}

function policyFindings(status: readonly PolicyStatus[], diagnostics: readonly Diagnostic[]): Finding[] {
  const out: Finding[] = [];
  let accepted = 0;
  for (const s of status) {
    const c = s.conditions.find((x) => x.type === 'Accepted');
    if (c?.status === 'True') accepted++;
    else out.push({ level: 'fail', text: `${s.key} not accepted (${c?.reason ?? 'no condition'}): ${c?.message ?? ''}`.trimEnd(), hint: 'it has no effect on traffic until fixed' });
  }
  out.unshift({ level: 'ok', text: `${accepted} of ${status.length} ${status.length === 1 ? 'policy' : 'policies'} accepted` });
  for (const d of diagnostics) {
    const where = d.line !== undefined ? `${d.file}:${d.line}` : d.file;
    out.push({ level: d.severity === 'error' ? 'fail' : 'warn', text: `${where}: ${d.reason}` });
  }
  return out;
}

async function caDescription(base: string, what: string): Promise<CaDescription | undefined> {
  try {
    return (await getJson(`${base}/debug/ca`, what)) as CaDescription;
  } catch (e) {
    // 404: the control plane runs without a CA (or predates /debug/ca).
    if (/ answered 404:/.test((e as Error).message)) return undefined;
    throw e;
  }
}

function caFindings(ca: CaDescription, now: number, warnDays: number): Finding[] {
  const out: Finding[] = [];
  for (const r of ca.roots) {
    const what = `${r.active ? 'root' : 'previous root (rotation overlap)'} ${r.subject}`;
    out.push(expiryFinding(what, r.notAfter, now, warnDays, ca.operator ? 'renew it in your PKI and restart with the new --ca-cert/--ca-key/--ca-chain' : 'rotate it: docs/operations.md, "Root rotation"'));
  }
  if (!ca.signer.isRoot) out.push(expiryFinding(`signing intermediate ${ca.signer.subject}`, ca.signer.notAfter, now, warnDays, 'renew it in your PKI and restart with the new --ca-cert/--ca-key/--ca-chain'));
  return out;
}

function expiryFinding(what: string, notAfter: string, now: number, warnDays: number, hint: string): Finding {
  const left = Date.parse(notAfter) - now;
  const days = Math.floor(left / DAY_MS);
  if (left <= 0) return { level: 'fail', text: `${what} EXPIRED on ${notAfter}`, hint };
  if (days < warnDays) return { level: 'warn', text: `${what} expires in ${days} days (${notAfter})`, hint };
  return { level: 'ok', text: `${what} valid for ${days} more days` };
}

async function sidecarDump(nodeId: string, adminPort: number): Promise<SidecarDump | Error> {
  const ip = nodeId.split('~')[1] ?? '';
  try {
    return (await getJson(`http://${ip}:${adminPort}/config_dump`, `the sidecar's admin at ${ip}:${adminPort}`, 2000)) as SidecarDump;
  } catch (e) {
    return e as Error;
  }
}

function workloadFinding(name: string, dump: SidecarDump | Error, ca: CaDescription | undefined, now: number): Finding {
  if (dump instanceof Error) return { level: 'warn', text: `${name}: certificate not checked: ${dump.message}`, hint: 'a captured pod\'s admin port is pod-local (127.0.0.1)' };
  const id = dump.identity;
  if (id === undefined) return { level: ca ? 'warn' : 'ok', text: `${name}: runs without identity (no WEFT_TOKEN_PATH): plaintext only` };
  if (id === null) return { level: 'fail', text: `${name}: no workload certificate yet`, hint: 'its log says why the CA refused or could not be reached' };
  const start = Date.parse(id.notBefore);
  const end = Date.parse(id.notAfter);
  if (end <= now) return { level: 'fail', text: `${name}: workload certificate EXPIRED on ${id.notAfter}`, hint: 'the sidecar retries; it recovers when the CA answers' };
  if (now - start > RENEWAL_OVERDUE * (end - start)) return { level: 'warn', text: `${name}: workload certificate renewal is overdue (expires ${id.notAfter})`, hint: 'its log says why the CA refused or could not be reached' };
  const active = ca?.roots.find((r) => r.active);
  const bundle = dump.config?.trustBundles?.ROOTCA?.caPem;
  if (ca && active && bundle !== undefined && !bundleHasActiveRoot(bundle, ca)) {
    return { level: 'warn', text: `${name}: its trust bundle lacks the CA's active root ${active.subject}`, hint: 'it has not received the latest ROOTCA Secret: see `weft proxy-status`' };
  }
  return { level: 'ok', text: `${name}: ${id.spiffeId}, expires in ${formatHours(end - now)}` };
}

/** Whether `bundle` holds the CA's active root (same subject and expiry). */
function bundleHasActiveRoot(bundle: string, ca: CaDescription): boolean {
  const active = ca.roots.find((r) => r.active)!;
  const pems = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return pems.some((p) => {
    const c = new X509Certificate(p);
    return Date.parse(c.validTo) === Date.parse(active.notAfter) && c.subject.replace(/\n/g, ', ') === active.subject;
  });
}

function formatHours(ms: number): string {
  const h = ms / 3600_000;
  return h >= 48 ? `${Math.floor(h / 24)} days` : h >= 1 ? `${Math.floor(h)} h` : `${Math.max(1, Math.floor(ms / 60_000))} min`;
}

const MARK: Record<Level, string> = { ok: '√', warn: '‼', fail: '×' };

export function renderChecks(sections: readonly Section[]): string {
  let out = '';
  for (const s of sections) {
    out += `${s.title}\n${'-'.repeat(s.title.length)}\n`;
    for (const f of s.findings) out += `${MARK[f.level]} ${f.text}\n${f.hint && f.level !== 'ok' ? `    see: ${f.hint}\n` : ''}`;
    out += '\n';
  }
  const all = sections.flatMap((s) => s.findings);
  const fails = all.filter((f) => f.level === 'fail').length;
  const warns = all.filter((f) => f.level === 'warn').length;
  out += fails ? `Status check results are × (${fails} failed, ${warns} warnings)\n` : `Status check results are √${warns ? ` (${warns} warnings)` : ''}\n`;
  return out;
}

async function run(args: ParsedArgs): Promise<number> {
  const pre = booleanFlag(args, 'pre');
  const kubeconfig = stringFlag(args, 'kubeconfig');
  const namespace = checkNamespace('namespace', stringFlag(args, 'namespace') ?? 'weft-system');
  if (pre && kubeconfig === undefined) throw new UsageError('--pre checks a Kubernetes cluster before install: give --kubeconfig FILE');
  if (pre && args.flags.has('control-plane')) throw new UsageError('--pre checks the cluster before install: there is no control plane to ask yet');
  if (kubeconfig === undefined && args.flags.has('namespace')) throw new UsageError('--namespace needs --kubeconfig (it names the control plane\'s namespace in the cluster)');
  const controlPlane = parseHostPort(stringFlag(args, 'control-plane') ?? '127.0.0.1:15014', '--control-plane');
  const warnDays = parseInteger(stringFlag(args, 'warn-days') ?? '30', '--warn-days', 0, 3650);
  const adminPort = parseInteger(stringFlag(args, 'admin-port') ?? '15000', '--admin-port', 1, 65535);
  const sections: Section[] = [];
  if (kubeconfig !== undefined) {
    const client = await loadKubeClient(kubeconfig, 10_000);
    try {
      sections.push(...(pre ? await preInstallChecks(client) : await installedChecks(client, namespace)));
    } finally {
      client.close();
    }
  }
  // In a cluster the control plane's debug port is reached through a port-forward: asked only when given.
  if (!pre && (kubeconfig === undefined || args.flags.has('control-plane'))) sections.push(...await runChecks({ controlPlane, warnDays, adminPort }));
  process.stdout.write(renderChecks(sections));
  return sections.some((s) => s.findings.some((f) => f.level === 'fail')) ? 1 : 0;
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'check that the running mesh is healthy',
  usage: 'weft check [--control-plane HOST:PORT] [--warn-days N] [--admin-port N] [--kubeconfig FILE [--namespace NS]] | weft check --pre --kubeconfig FILE',
  description: [
    'Checks a running mesh (local mode): the control plane answers; every proxy acknowledged\n' +
      'its config; every policy is accepted and no manifest has problems; the CA\'s roots (and an\n' +
      'operator\'s intermediate) are more than --warn-days from expiry; every sidecar holds a\n' +
      'valid, timely renewed workload certificate and trusts the CA\'s active root.',
    'With --kubeconfig it also asks the API server about the installed mesh: the CRDs are\n' +
      'established, both webhook configurations have a caBundle, the leader Lease in --namespace\n' +
      '(default weft-system) is fresh, the CA Secret exists, every policy is Accepted; the control\n' +
      'plane itself is then asked only when --control-plane is given (a port-forward to 15014).',
    '--pre --kubeconfig FILE checks a cluster before `helm install`: the API server answers and\n' +
      'supports native sidecars, admission webhooks are served, you may create what the chart\n' +
      'creates, tokens with audience weft are issued and pass a TokenReview, and whether Weft is\n' +
      'already installed.',
    'Prints one line per finding (√ ok, ‼ warning, × failure) and exits 1 if anything failed.',
  ],
  flags: [
    { name: 'control-plane', type: 'string', placeholder: 'HOST:PORT', help: 'the control plane\'s debug address (default 127.0.0.1:15014)' },
    { name: 'warn-days', type: 'string', placeholder: 'N', help: 'warn about certificates expiring within N days (default 30)' },
    { name: 'admin-port', type: 'string', placeholder: 'N', help: 'the sidecars\' admin port (default 15000)' },
    { name: 'pre', type: 'boolean', help: 'pre-install checks of a cluster (needs --kubeconfig)' },
    { name: 'kubeconfig', type: 'string', placeholder: 'FILE', help: 'check the cluster this kubeconfig points at' },
    { name: 'namespace', type: 'string', placeholder: 'NS', help: 'the control plane\'s namespace in the cluster (default weft-system)' },
  ],
  available: true,
  run,
};
