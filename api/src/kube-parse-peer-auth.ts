/**
 * The `weft.dev/v1alpha1 PeerAuthentication` parser (Istio's `security.istio.io` PeerAuthentication,
 * the fields SPEC.md shows): a structural schema plus what a schema cannot say — `portLevelMtls`
 * keys are port numbers 1–65535 and need a `selector`, as in Istio.
 */
import type { MtlsMode, ObjectMeta, PeerAuthentication } from './kube-types';
import { FieldChecker, absent } from './kube-parse-fields';

export const MTLS_MODES: readonly MtlsMode[] = ['STRICT', 'PERMISSIVE', 'DISABLE', 'UNSET'];

function mode(v: unknown, path: string, c: FieldChecker): MtlsMode {
  const m = c.object(v, path, { fields: ['mode'] });
  if (m === undefined) return 'UNSET';
  return c.oneOf(m.mode, `${path}.mode`, MTLS_MODES) ?? 'UNSET';
}

export function parsePeerAuthentication(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): PeerAuthentication {
  const spec = c.object(raw.spec, 'spec', { fields: ['selector', 'mtls', 'portLevelMtls'] }) ?? {};
  let selector: Record<string, string> | undefined;
  const sel = c.object(spec.selector, 'spec.selector', { fields: ['matchLabels'] });
  if (sel !== undefined) {
    selector = c.stringMap(sel.matchLabels, 'spec.selector.matchLabels', true);
    // Istio: an empty selector selects every workload of the namespace (as no selector does).
    if (Object.keys(selector).length === 0) selector = undefined;
  }
  const portLevel = new Map<number, MtlsMode>();
  const ports = c.object(spec.portLevelMtls, 'spec.portLevelMtls');
  if (ports !== undefined) {
    if (!selector && Object.keys(ports).length) c.error('spec.portLevelMtls', 'needs spec.selector (port-level settings apply to selected workloads only, as in Istio)');
    for (const [k, v] of Object.entries(ports)) {
      const port = /^\d+$/.test(k) ? Number(k) : NaN;
      if (!(port >= 1 && port <= 65535)) {
        c.error(`spec.portLevelMtls.${k}`, 'the key must be a port number between 1 and 65535');
        continue;
      }
      if (absent(v)) continue;
      portLevel.set(port, mode(v, `spec.portLevelMtls.${k}`, c));
    }
  }
  return { kind: 'PeerAuthentication', meta, ...(selector ? { selector } : {}), mode: mode(spec.mtls, 'spec.mtls', c), portLevel };
}
