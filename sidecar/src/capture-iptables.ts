/**
 * Transparent capture: the iptables (nat table) rules the pod's init step installs, sending the
 * pod's inbound TCP to the sidecar's 15006 and its outbound TCP to 15001, except the sidecar's own
 * traffic (by uid/gid), loopback, and what the options exclude. Rules are built by a pure function
 * (`captureRules`) and applied atomically with `iptables-restore --noflush`. IPv4 only for now.
 */
import { execFile } from 'node:child_process';
import { isIPv4 } from 'node:net';

export interface CaptureOptions {
  /** The sidecar runs as this uid (and gid); its own connections are never captured. */
  readonly proxyUid: number;
  readonly proxyGid?: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  /** Inbound destination ports to capture: every port (`'*'`) or these. */
  readonly inboundPorts: '*' | readonly number[];
  readonly excludeInboundPorts: readonly number[];
  /** Outbound destinations to capture: everything (`'*'`) or these CIDRs. */
  readonly outboundCidrs: '*' | readonly string[];
  readonly excludeOutboundCidrs: readonly string[];
  readonly excludeOutboundPorts: readonly number[];
}

/** The sidecar's own ports: never redirected inbound (SPEC.md, "Ports"). */
export const SIDECAR_PORTS: readonly number[] = [15000, 15001, 15006, 15020, 15021];

export const DEFAULT_CAPTURE: CaptureOptions = {
  proxyUid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  inboundPorts: '*',
  excludeInboundPorts: [],
  outboundCidrs: '*',
  excludeOutboundCidrs: [],
  excludeOutboundPorts: [],
};

export const CHAINS = { inbound: 'WEFT_INBOUND', inRedirect: 'WEFT_IN_REDIRECT', output: 'WEFT_OUTPUT', redirect: 'WEFT_REDIRECT' } as const;

/** Problems with the options, one line each; empty when they can be applied. */
export function validateCapture(o: CaptureOptions): string[] {
  const errors: string[] = [];
  const port = (p: number, what: string): void => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) errors.push(`${what}: ${p} is not a port (1-65535)`);
  };
  const cidr = (c: string, what: string): void => {
    const [ip, bits, extra] = c.split('/');
    const n = Number(bits ?? '32');
    if (extra !== undefined || !ip || !isIPv4(ip) || !Number.isInteger(n) || n < 0 || n > 32) errors.push(`${what}: "${c}" is not an IPv4 CIDR`);
  };
  if (!Number.isInteger(o.proxyUid) || o.proxyUid < 0) errors.push(`proxy uid: ${o.proxyUid} is not a uid`);
  if (o.proxyGid !== undefined && (!Number.isInteger(o.proxyGid) || o.proxyGid < 0)) errors.push(`proxy gid: ${o.proxyGid} is not a gid`);
  port(o.outboundPort, 'outbound port');
  port(o.inboundPort, 'inbound port');
  if (o.inboundPorts !== '*') o.inboundPorts.forEach((p) => port(p, 'inbound ports'));
  o.excludeInboundPorts.forEach((p) => port(p, 'excluded inbound ports'));
  o.excludeOutboundPorts.forEach((p) => port(p, 'excluded outbound ports'));
  if (o.outboundCidrs !== '*') o.outboundCidrs.forEach((c) => cidr(c, 'outbound CIDRs'));
  o.excludeOutboundCidrs.forEach((c) => cidr(c, 'excluded outbound CIDRs'));
  return errors;
}

/** The rules, in `iptables-restore` format for the nat table. */
export function captureRules(o: CaptureOptions): string {
  const { inbound, inRedirect, output, redirect } = CHAINS;
  const lines = ['*nat', ...Object.values(CHAINS).map((c) => `:${c} - [0:0]`)];
  const add = (rule: string): void => void lines.push(`-A ${rule}`);
  add(`${inRedirect} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`);
  add(`${redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`);

  // Inbound: what arrives from outside the pod, but never the sidecar's own ports.
  add(`PREROUTING -p tcp -j ${inbound}`);
  for (const p of unique([...SIDECAR_PORTS, ...o.excludeInboundPorts])) add(`${inbound} -p tcp --dport ${p} -j RETURN`);
  if (o.inboundPorts === '*') add(`${inbound} -p tcp -j ${inRedirect}`);
  else for (const p of unique(o.inboundPorts)) add(`${inbound} -p tcp --dport ${p} -j ${inRedirect}`);

  // Outbound: what the pod's processes connect to, except the sidecar itself (it would loop).
  add(`OUTPUT -p tcp -j ${output}`);
  add(`${output} -m owner --uid-owner ${o.proxyUid} -j RETURN`);
  if (o.proxyGid !== undefined) add(`${output} -m owner --gid-owner ${o.proxyGid} -j RETURN`);
  add(`${output} -o lo -j RETURN`);
  for (const p of unique(o.excludeOutboundPorts)) add(`${output} -p tcp --dport ${p} -j RETURN`);
  for (const c of unique(o.excludeOutboundCidrs)) add(`${output} -d ${c} -j RETURN`);
  if (o.outboundCidrs === '*') add(`${output} -j ${redirect}`);
  else for (const c of unique(o.outboundCidrs)) add(`${output} -d ${c} -j ${redirect}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Rules that undo `captureRules` (for `--cleanup`): unhook, flush and delete the chains. */
export function cleanupCommands(): string[][] {
  const { inbound, output } = CHAINS;
  return [
    ['-t', 'nat', '-D', 'PREROUTING', '-p', 'tcp', '-j', inbound],
    ['-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', output],
    ...Object.values(CHAINS).flatMap((c) => [['-t', 'nat', '-F', c], ['-t', 'nat', '-X', c]]),
  ];
}

/**
 * Applies the rules atomically, replacing any earlier Weft rules (so running the init step twice
 * leaves one set). Rejects with the option problems, or iptables-restore's own message.
 */
export async function applyCapture(o: CaptureOptions, run = runTool): Promise<void> {
  const errors = validateCapture(o);
  if (errors.length) throw new Error(errors.join('; '));
  await removeCapture(run);
  await run('iptables-restore', ['--noflush'], captureRules(o));
}

/** Removes the rules; missing chains are not an error (cleanup is idempotent). */
export async function removeCapture(run = runTool): Promise<void> {
  for (const args of cleanupCommands()) await run('iptables', args).catch(() => undefined);
}

export function runTool(cmd: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, [...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim().split('\n')[0]}`, { cause: err }));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
