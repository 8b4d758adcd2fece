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
  /**
   * The pod's traffic reaches the sidecar through iptables (node metadata
   * `INTERCEPTION_MODE: REDIRECT`): listeners bind every address and peers address the pod's app
   * ports directly. Otherwise local mode: listeners on the pod IP, peers use the inbound port.
   */
  capture: boolean;
  /**
   * The sidecar holds a workload identity (node metadata `WEFT_MTLS: "true"`): it terminates and
   * originates mesh mTLS, so callers reach it over mTLS (auto mTLS, docs/protocols.md).
   */
  mtls?: boolean;
}

/** Node metadata key a sidecar sets to `"true"` when it has a workload identity (certificate). */
export const MTLS_CAPABLE = 'WEFT_MTLS';

/** Node metadata key a sidecar sets to `REDIRECT` when its pod's traffic is captured. */
export const INTERCEPTION_MODE = 'INTERCEPTION_MODE';

export interface ProxylessNode {
  kind: 'proxyless';
  id: string;
}

export type NodeIdentity = SidecarNode | ProxylessNode;

export function sidecarNodeId(podIp: string, podName: string, namespace: string): string {
  return `sidecar~${podIp}~${podName}.${namespace}~${namespace}.svc.cluster.local`;
}

/** `metadata`: the node's string metadata (see `INTERCEPTION_MODE`). */
export function parseNodeId(id: string, metadata: Readonly<Record<string, string>> = {}): NodeIdentity {
  const parts = id.split('~');
  if (parts.length === 4 && parts[0] === 'sidecar') {
    const [, podIp, podAndNs, domain] = parts as [string, string, string, string];
    const dot = podAndNs.lastIndexOf('.');
    const namespace = domain.split('.')[0] ?? '';
    if (dot > 0 && podAndNs.slice(dot + 1) === namespace && podIp) {
      return { kind: 'sidecar', id, podIp, podName: podAndNs.slice(0, dot), namespace, capture: metadata[INTERCEPTION_MODE] === 'REDIRECT', ...(metadata[MTLS_CAPABLE] === 'true' ? { mtls: true } : {}) };
    }
  }
  return { kind: 'proxyless', id };
}

/**
 * String values of a node's `metadata` (a google.protobuf.Struct as decoded by protobufjs, whose
 * well-known Value fields are camelCase: `stringValue`).
 */
export function nodeMetadataStrings(metadata: unknown): Record<string, string> {
  const fields = (metadata as { fields?: Record<string, { stringValue?: unknown; string_value?: unknown }> } | null | undefined)?.fields ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    const s = v?.stringValue ?? v?.string_value;
    if (typeof s === 'string') out[k] = s;
  }
  return out;
}
