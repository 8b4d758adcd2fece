/**
 * The setup Kubernetes-mode tests share: pod addresses on lo (the API server refuses loopback
 * endpoints), a test cluster with the weft.dev CRDs installed and the given namespaces created,
 * and a kubectl that throws with kubectl's message when it fails.
 */
import { installCrds, startKubeCluster, type KubeCluster } from './kube-cluster';
import { addPodAddresses, type PodAddresses } from './pod-addresses';

export interface MeshCluster {
  readonly cluster: KubeCluster;
  /** kubectl as the admin; resolves stdout, rejects with stderr on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Stops the cluster and removes the pod addresses. */
  close(): Promise<void>;
}

/** A ready cluster, or why there cannot be one here (for `t.skip`). */
export async function startMeshCluster(podIps: readonly string[], namespaces: readonly string[]): Promise<MeshCluster | string> {
  const addresses: PodAddresses | string = addPodAddresses(podIps);
  if (typeof addresses === 'string') return addresses;
  const cluster = await startKubeCluster();
  if (typeof cluster === 'string') {
    addresses.remove();
    return cluster;
  }
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await cluster.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout;
  };
  await installCrds(cluster);
  for (const ns of namespaces) await kubectl(['create', 'namespace', ns]);
  return {
    cluster,
    kubectl,
    close: async () => {
      await cluster.close();
      addresses.remove();
    },
  };
}

/** A Pod as JSON for `kubectl apply -f -`. */
export function podJson(ns: string, name: string, labels: Record<string, string>, serviceAccount = 'default', port?: number): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels },
    spec: { serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app', ...(port ? { ports: [{ containerPort: port }] } : {}) }] },
  });
}

/** A Service with one `http` port as JSON for `kubectl apply -f -`. */
export function serviceJson(ns: string, name: string, selector: Record<string, string>, port: number): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector, ports: [{ name: 'http', port, targetPort: port }] } });
}
