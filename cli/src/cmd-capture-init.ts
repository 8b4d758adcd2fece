/**
 * `weft capture-init`: the pod's init step. Installs the iptables rules that send the pod's
 * inbound TCP to the sidecar's 15006 and its outbound TCP to 15001 (except the sidecar's own
 * uid), or prints them (`--dry-run`), or removes them (`--cleanup`). Needs NET_ADMIN in the pod's
 * network namespace; nothing else.
 */
import { applyCapture, captureRules, DEFAULT_CAPTURE, removeCapture, validateCapture, type CaptureOptions } from '@weft/sidecar';
import { booleanFlag, parseInteger, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { CliError, UsageError } from './errors';

function list(value: string | undefined, what: string, parse: (s: string) => number | string): (number | string)[] | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') return [];
  return value.split(',').map((s) => s.trim()).map((s) => {
    try {
      return parse(s);
    } catch {
      throw new UsageError(`${what}: "${s}" is not valid`);
    }
  });
}
const port = (s: string): number => parseInteger(s, 'port', 1, 65535);

/** Options from flags over the defaults. Throws UsageError with every problem. */
export function captureOptionsFrom(args: ParsedArgs): CaptureOptions {
  const inbound = stringFlag(args, 'inbound-ports');
  const outbound = stringFlag(args, 'outbound-cidrs');
  const uid = stringFlag(args, 'proxy-uid');
  const gid = stringFlag(args, 'proxy-gid');
  const o: CaptureOptions = {
    ...DEFAULT_CAPTURE,
    ...(uid !== undefined ? { proxyUid: parseInteger(uid, '--proxy-uid', 0, 2 ** 31 - 1) } : {}),
    ...(gid !== undefined ? { proxyGid: parseInteger(gid, '--proxy-gid', 0, 2 ** 31 - 1) } : {}),
    inboundPorts: inbound === undefined || inbound === '*' ? '*' : (list(inbound, '--inbound-ports', port) as number[]),
    excludeInboundPorts: (list(stringFlag(args, 'exclude-inbound-ports'), '--exclude-inbound-ports', port) ?? []) as number[],
    outboundCidrs: outbound === undefined || outbound === '*' ? '*' : (list(outbound, '--outbound-cidrs', String) as string[]),
    excludeOutboundCidrs: (list(stringFlag(args, 'exclude-outbound-cidrs'), '--exclude-outbound-cidrs', String) ?? []) as string[],
    excludeOutboundPorts: (list(stringFlag(args, 'exclude-outbound-ports'), '--exclude-outbound-ports', port) ?? []) as number[],
  };
  const [first, ...more] = validateCapture(o);
  if (first) throw new UsageError(first, { more });
  return o;
}

async function run(args: ParsedArgs): Promise<number> {
  if (booleanFlag(args, 'cleanup')) {
    await removeCapture();
    return 0;
  }
  const o = captureOptionsFrom(args);
  if (booleanFlag(args, 'dry-run')) {
    process.stdout.write(captureRules(o));
    return 0;
  }
  try {
    await applyCapture(o);
  } catch (err) {
    throw new CliError(`cannot install the capture rules: ${(err as Error).message}`, { cause: err });
  }
  process.stdout.write(`capture rules installed: inbound → ${o.inboundPort}, outbound → ${o.outboundPort}, proxy uid ${o.proxyUid} exempt\n`);
  return 0;
}

export const captureInitCommand: Command = {
  name: 'capture-init',
  summary: 'install the pod\'s traffic capture rules (the init step)',
  usage: 'weft capture-init [--proxy-uid N] [--inbound-ports *|P,..] [--outbound-cidrs *|CIDR,..] [exclusions] [--dry-run | --cleanup]',
  description: [
    'Installs iptables rules (nat table, IPv4) in the current network namespace: inbound TCP to\n' +
      'port 15006 and outbound TCP to 15001, except connections made by the sidecar\'s uid, loopback\n' +
      'traffic, the sidecar\'s own ports (15000, 15001, 15006, 15020, 15021) and what you exclude.\n' +
      'Running it again replaces the rules. Needs CAP_NET_ADMIN.',
  ],
  flags: [
    { name: 'proxy-uid', type: 'string', placeholder: 'N', help: 'uid the sidecar runs as; never captured (default 1337)' },
    { name: 'proxy-gid', type: 'string', placeholder: 'N', help: 'gid the sidecar runs as; never captured (default: not used)' },
    { name: 'inbound-ports', type: 'string', placeholder: '*|P,..', help: 'inbound ports to capture (default *: all)' },
    { name: 'exclude-inbound-ports', type: 'string', placeholder: 'P,..', help: 'inbound ports never captured' },
    { name: 'outbound-cidrs', type: 'string', placeholder: '*|CIDR,..', help: 'outbound destinations to capture (default *: all)' },
    { name: 'exclude-outbound-cidrs', type: 'string', placeholder: 'CIDR,..', help: 'outbound destinations never captured' },
    { name: 'exclude-outbound-ports', type: 'string', placeholder: 'P,..', help: 'outbound ports never captured' },
    { name: 'dry-run', type: 'boolean', help: 'print the rules (iptables-restore format) instead of installing them' },
    { name: 'cleanup', type: 'boolean', help: 'remove the rules' },
  ],
  available: true,
  run,
};
