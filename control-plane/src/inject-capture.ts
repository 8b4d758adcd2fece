/**
 * The traffic-capture settings of an injected pod: what `weft capture-init` (the `weft-init`
 * container) is told to redirect. They come from InjectionConfig `capture` and are overridden per
 * pod by Istio-like annotations (`traffic.weft.dev/includeInboundPorts`, ...). Values are the
 * comma lists `weft capture-init` takes; each is checked here, at the edge, so a bad annotation
 * refuses the pod with a clear reason instead of an init container that fails in the node.
 */
import { isIP } from 'node:net';

export interface CaptureSettings {
  /** `*` (all) or `80,443`. */
  readonly inboundPorts: string;
  readonly excludeInboundPorts: string;
  /** `*` (all) or `10.0.0.0/8,192.168.1.1`. */
  readonly outboundCidrs: string;
  readonly excludeOutboundCidrs: string;
  readonly excludeOutboundPorts: string;
}

export const DEFAULT_CAPTURE_SETTINGS: CaptureSettings = {
  inboundPorts: '*',
  excludeInboundPorts: '',
  outboundCidrs: '*',
  excludeOutboundCidrs: '',
  excludeOutboundPorts: '',
};

type Kind = 'ports' | 'cidrs';
/** Each setting: what its values are, whether `*` is allowed, its annotation and its `weft capture-init` flag. */
export const CAPTURE_FIELDS: readonly { readonly key: keyof CaptureSettings; readonly kind: Kind; readonly star: boolean; readonly annotation: string; readonly flag: string }[] = [
  { key: 'inboundPorts', kind: 'ports', star: true, annotation: 'traffic.weft.dev/includeInboundPorts', flag: '--inbound-ports' },
  { key: 'excludeInboundPorts', kind: 'ports', star: false, annotation: 'traffic.weft.dev/excludeInboundPorts', flag: '--exclude-inbound-ports' },
  { key: 'outboundCidrs', kind: 'cidrs', star: true, annotation: 'traffic.weft.dev/includeOutboundIPRanges', flag: '--outbound-cidrs' },
  { key: 'excludeOutboundCidrs', kind: 'cidrs', star: false, annotation: 'traffic.weft.dev/excludeOutboundIPRanges', flag: '--exclude-outbound-cidrs' },
  { key: 'excludeOutboundPorts', kind: 'ports', star: false, annotation: 'traffic.weft.dev/excludeOutboundPorts', flag: '--exclude-outbound-ports' },
];

/** The value normalized (`80, 443` → `80,443`), or why it is not valid. */
export function checkCaptureValue(value: string, kind: Kind, star: boolean): { value: string } | { error: string } {
  const v = value.trim();
  if (v === '*') return star ? { value: v } : { error: '"*" is not allowed here (exclusions are explicit)' };
  // `weft capture-init` has no way to say "capture none" (an empty flag value is a usage error);
  // an empty include would silently mean "all", so it is refused here.
  if (v === '') return star ? { error: 'must be "*" or a list (capturing nothing is not supported: exclude ports or ranges instead)' } : { value: '' };
  const items = v.split(',').map((s) => s.trim());
  for (const item of items) {
    const why = kind === 'ports' ? portError(item) : cidrError(item);
    if (why) return { error: `"${item}" ${why}` };
  }
  return { value: items.join(',') };
}

function portError(s: string): string | undefined {
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  return n >= 1 && n <= 65535 ? undefined : 'is not a port (1-65535)';
}

function cidrError(s: string): string | undefined {
  const [addr = '', prefix, extra] = s.split('/');
  if (extra !== undefined || isIP(addr) !== 4) return 'is not an IPv4 address or CIDR (capture is IPv4 only)';
  if (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= 32)) return 'has a prefix length that is not 0-32';
  return undefined;
}

/** `weft capture-init` arguments for `s` (exclusions only when set). */
export function captureArgs(s: CaptureSettings, proxyUid: number): string[] {
  const args = ['--proxy-uid', String(proxyUid)];
  for (const f of CAPTURE_FIELDS) {
    if (f.star || s[f.key] !== '') args.push(`${f.flag}=${s[f.key]}`);
  }
  return args;
}
