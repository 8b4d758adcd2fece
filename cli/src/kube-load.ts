/**
 * What the Kubernetes-facing commands share: a namespace flag checked once, and the API client
 * loaded with a bad kubeconfig reported as one usage line. `@weft/control-plane` is imported only
 * when a client is loaded, so commands that never talk to a cluster (`weft sidecar`) do not pay
 * for it.
 */
import { names } from '@weft/api';
import type { KubeClient } from '@weft/control-plane';
import { UsageError } from './errors';

/** A namespace name from `--flag` (already read), or a usage error naming the flag. */
export function checkNamespace(flag: string, value: string): string {
  const why = names.dnsLabel(value);
  if (why) throw new UsageError(`--${flag}: "${value}" is not a namespace name (${why})`);
  return value;
}

/** The API client for `kubeconfig` (absent: the in-cluster service account). */
export async function loadKubeClient(kubeconfig: string | undefined, timeoutMs?: number): Promise<KubeClient> {
  const { KubeClient } = await import('@weft/control-plane');
  try {
    return await KubeClient.load({ ...(kubeconfig === undefined ? {} : { kubeconfig }), ...(timeoutMs ? { timeoutMs } : {}) });
  } catch (e) {
    throw new UsageError(`${kubeconfig === undefined ? 'in-cluster configuration' : `--kubeconfig ${kubeconfig}`}: ${(e as Error).message}`);
  }
}
