/**
 * SDS: the trust bundle as an Envoy `Secret` named `ROOTCA` (Istio's name), a validation context
 * with every trusted root inline. Sent to every sidecar; absent when the control plane runs
 * without a CA. The workload certificate itself never travels over xDS: the sidecar generates its
 * key and gets its certificate from the signing API on 15012.
 */
import type { World } from './world';

export const ROOTCA_SECRET = 'ROOTCA';

export function trustBundleSecrets(world: World): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  if (world.trustBundlePem) {
    out.set(ROOTCA_SECRET, { name: ROOTCA_SECRET, validation_context: { trusted_ca: { inline_string: world.trustBundlePem } } });
  }
  return out;
}
