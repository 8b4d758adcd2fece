/**
 * xDS node ids. A sidecar's is `sidecar~<POD_IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local`
 * (SPEC.md, "Sidecar environment"); anything else is treated as a proxyless gRPC client.
 */
export interface SidecarNode {
  kind: 'sidecar';
  id: string;
  podIp: string;
  podName: string;
  namespace: string;
}

export interface ProxylessNode {
  kind: 'proxyless';
  id: string;
}

export type NodeIdentity = SidecarNode | ProxylessNode;

export function sidecarNodeId(podIp: string, podName: string, namespace: string): string {
  return `sidecar~${podIp}~${podName}.${namespace}~${namespace}.svc.cluster.local`;
}

export function parseNodeId(id: string): NodeIdentity {
  const parts = id.split('~');
  if (parts.length === 4 && parts[0] === 'sidecar') {
    const [, podIp, podAndNs, domain] = parts as [string, string, string, string];
    const dot = podAndNs.lastIndexOf('.');
    const namespace = domain.split('.')[0] ?? '';
    if (dot > 0 && podAndNs.slice(dot + 1) === namespace && podIp) {
      return { kind: 'sidecar', id, podIp, podName: podAndNs.slice(0, dot), namespace };
    }
  }
  return { kind: 'proxyless', id };
}
