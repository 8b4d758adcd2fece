/**
 * Raw Kubernetes objects (decoded YAML/JSON) → the typed values of `kube-types.ts`, validated
 * once at the edge (STYLE.md). Core kinds are read leniently (fields Weft does not use are
 * ignored, since the API server validates them); `weft.dev` kinds follow a structural schema.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type {
  ContainerPort,
  EndpointSlice,
  EndpointSliceEndpoint,
  EndpointSlicePort,
  KubeObject,
  ObjectMeta,
  Pod,
  Service,
  ServicePort,
} from './kube-types';
import { FieldChecker, absent, isPlainObject, names } from './kube-parse-fields';
import { parseTrafficPolicy } from './kube-parse-policy';
import { parseAuthorizationPolicy } from './kube-parse-authz';
import { parsePeerAuthentication } from './kube-parse-peer-auth';

export { parseDuration } from './kube-parse-fields';

/** What one document is: an object Weft uses, a kind it knowingly skips, or an error list. */
export type ParseOutcome =
  | { readonly kind: 'object'; readonly value: KubeObject }
  /** `warn`: the user surely meant it to have an effect (a security policy this version cannot enforce). */
  | { readonly kind: 'ignored'; readonly reason: string; readonly warn: boolean }
  | { readonly kind: 'invalid'; readonly errors: string[] };

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

type KindParser = (meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker) => KubeObject;
const PARSERS: Record<string, { parse: KindParser; name: (s: string) => string | undefined }> = {
  'v1/Service': { parse: parseService, name: names.dns1035Label },
  'v1/Pod': { parse: parsePod, name: names.dnsSubdomain },
  'discovery.k8s.io/v1/EndpointSlice': { parse: parseEndpointSlice, name: names.dnsSubdomain },
  'weft.dev/v1alpha1/TrafficPolicy': { parse: parseStrictCrd(parseTrafficPolicy), name: names.dnsSubdomain },
  'weft.dev/v1alpha1/AuthorizationPolicy': { parse: parseStrictCrd(parseAuthorizationPolicy), name: names.dnsSubdomain },
  'weft.dev/v1alpha1/PeerAuthentication': { parse: parseStrictCrd(parsePeerAuthentication), name: names.dnsSubdomain },
};

/** Kinds a manifest directory may well hold that local mode has no use for. */
const IGNORED: Record<string, readonly string[]> = {
  v1: ['Namespace', 'ConfigMap', 'Secret', 'ServiceAccount', 'Endpoints', 'PersistentVolumeClaim', 'PersistentVolume',
    'ReplicationController', 'LimitRange', 'ResourceQuota', 'Node', 'Event'],
  'apps/v1': ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ControllerRevision'],
  'batch/v1': ['Job', 'CronJob'],
  'rbac.authorization.k8s.io/v1': ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'],
  'networking.k8s.io/v1': ['Ingress', 'IngressClass', 'NetworkPolicy'],
  'policy/v1': ['PodDisruptionBudget'],
  'autoscaling/v1': ['HorizontalPodAutoscaler'],
  'autoscaling/v2': ['HorizontalPodAutoscaler'],
  'apiextensions.k8s.io/v1': ['CustomResourceDefinition'],
  'admissionregistration.k8s.io/v1': ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration'],
  'scheduling.k8s.io/v1': ['PriorityClass'],
  'storage.k8s.io/v1': ['StorageClass'],
  'coordination.k8s.io/v1': ['Lease'],
};

/**
 * Validates one decoded document. Never throws. Errors name the field path
 * (`spec.ports[0].port: must be an integer between 1 and 65535`); all errors of the document are
 * reported together. Defaults: namespace `default`, protocol `TCP`, targetPort = port, Pod service
 * account `default`, a single backend's weight 100; an empty Service selector means no selector.
 */
export function parseKubeObject(raw: unknown): ParseOutcome {
  if (!isPlainObject(raw)) return { kind: 'invalid', errors: ['a Kubernetes object must be a mapping'] };
  const apiVersion = typeof raw.apiVersion === 'string' ? raw.apiVersion : undefined;
  const kind = typeof raw.kind === 'string' ? raw.kind : undefined;
  if (apiVersion === undefined || kind === undefined || kind === '' || apiVersion === '') {
    const errors: string[] = [];
    if (apiVersion === undefined || apiVersion === '') errors.push('apiVersion: required (a string)');
    if (kind === undefined || kind === '') errors.push('kind: required (a string)');
    return { kind: 'invalid', errors };
  }
  if (IGNORED[apiVersion]?.includes(kind)) {
    return { kind: 'ignored', warn: false, reason: `${kind} (${apiVersion}) is not used by Weft in local mode` };
  }
  const entry = PARSERS[`${apiVersion}/${kind}`];
  if (entry === undefined) {
    const known = Object.keys(PARSERS).find((k) => k.endsWith(`/${kind}`));
    const hint = known ? `; Weft reads ${known.slice(0, -kind.length - 1)} ${kind}` : '';
    return { kind: 'invalid', errors: [`unknown kind ${JSON.stringify(kind)} (apiVersion ${JSON.stringify(apiVersion)})${hint}`] };
  }
  const c = new FieldChecker();
  const meta = parseMeta(raw.metadata, c, entry.name);
  const value = entry.parse(meta, raw, c);
  return c.errors.length > 0 ? { kind: 'invalid', errors: c.errors } : { kind: 'object', value };
}

function parseMeta(v: unknown, c: FieldChecker, nameRule: (s: string) => string | undefined): ObjectMeta {
  const m = c.object(v, 'metadata', { required: true }) ?? {};
  const name = c.string(m.name, 'metadata.name', { required: true, check: nameRule }) ?? '';
  const namespace = c.string(m.namespace, 'metadata.namespace', { check: names.dnsLabel }) ?? 'default';
  const labels = c.stringMap(m.labels, 'metadata.labels', true);
  const annotations = c.stringMap(m.annotations, 'metadata.annotations');
  const creationTimestamp = c.string(m.creationTimestamp, 'metadata.creationTimestamp', {
    check: (s) => (Number.isNaN(Date.parse(s)) ? 'must be an RFC 3339 time' : undefined),
  });
  const uid = c.string(m.uid, 'metadata.uid');
  const generation = c.int(m.generation, 'metadata.generation', 0, Number.MAX_SAFE_INTEGER);
  return {
    name,
    namespace,
    labels,
    annotations,
    ...(creationTimestamp !== undefined ? { creationTimestamp } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(generation !== undefined ? { generation } : {}),
  };
}

/** CRDs have a structural schema: unknown top-level fields are errors too. */
function parseStrictCrd(parse: KindParser): KindParser {
  return (meta, raw, c) => {
    c.object(raw, '', { fields: ['apiVersion', 'kind', 'metadata', 'spec', 'status'] });
    return parse(meta, raw, c);
  };
}

function parseService(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): Service {
  const spec = c.object(raw.spec, 'spec', { required: true }) ?? {};
  const selector = absent(spec.selector) ? {} : c.stringMap(spec.selector, 'spec.selector', true);
  const list = c.array(spec.ports, 'spec.ports') ?? [];
  const ports: ServicePort[] = [];
  const seen = new Set<string>();
  list.forEach((rp, i) => {
    const p = `spec.ports[${i}]`;
    const o = c.object(rp, p, { required: true });
    if (o === undefined) return;
    const name = c.string(o.name, `${p}.name`, { required: list.length > 1, check: names.dnsLabel });
    if (name !== undefined && seen.has(name)) c.error(`${p}.name`, `duplicate port name "${name}"`);
    if (name !== undefined) seen.add(name);
    const port = c.int(o.port, `${p}.port`, 1, 65535, true);
    const targetPort =
      typeof o.targetPort === 'string'
        ? c.string(o.targetPort, `${p}.targetPort`, { check: names.portName })
        : c.int(o.targetPort, `${p}.targetPort`, 1, 65535);
    const protocol = c.oneOf(o.protocol, `${p}.protocol`, PROTOCOLS) ?? 'TCP';
    const appProtocol = c.string(o.appProtocol, `${p}.appProtocol`);
    if (port === undefined) return;
    ports.push({
      ...(name !== undefined ? { name } : {}),
      port,
      targetPort: targetPort ?? port,
      protocol,
      ...(appProtocol !== undefined ? { appProtocol } : {}),
    });
  });
  const clusterIP = c.string(spec.clusterIP, 'spec.clusterIP');
  return {
    kind: 'Service',
    meta,
    // The endpoints controllers skip Services without a selector, and an empty one is stored as none.
    ...(Object.keys(selector).length > 0 ? { selector } : {}),
    ports,
    ...(clusterIP !== undefined ? { clusterIP } : {}),
  };
}

function parseContainerPorts(containers: readonly unknown[], base: string, c: FieldChecker, out: ContainerPort[], onlySidecars: boolean): void {
  containers.forEach((rc, i) => {
    const o = c.object(rc, `${base}[${i}]`, { required: true });
    // Only restartable init containers (native sidecars) serve traffic.
    if (o === undefined || (onlySidecars && o.restartPolicy !== 'Always')) return;
    (c.array(o.ports, `${base}[${i}].ports`) ?? []).forEach((rp, j) => {
      const p = `${base}[${i}].ports[${j}]`;
      const po = c.object(rp, p, { required: true });
      if (po === undefined) return;
      const name = c.string(po.name, `${p}.name`, { check: names.portName });
      const containerPort = c.int(po.containerPort, `${p}.containerPort`, 1, 65535, true);
      const protocol = c.oneOf(po.protocol, `${p}.protocol`, PROTOCOLS) ?? 'TCP';
      if (containerPort !== undefined) out.push({ ...(name !== undefined ? { name } : {}), containerPort, protocol });
    });
  });
}

function parsePod(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): Pod {
  // Local-mode pods may be just metadata and status.podIP, so spec is optional.
  const spec = c.object(raw.spec, 'spec') ?? {};
  const sa = absent(spec.serviceAccountName) ? spec.serviceAccount : spec.serviceAccountName;
  const saPath = absent(spec.serviceAccountName) ? 'spec.serviceAccount' : 'spec.serviceAccountName';
  const serviceAccount = c.string(sa, saPath, { check: names.dnsSubdomain }) ?? 'default';
  const containerPorts: ContainerPort[] = [];
  parseContainerPorts(c.array(spec.containers, 'spec.containers') ?? [], 'spec.containers', c, containerPorts, false);
  parseContainerPorts(c.array(spec.initContainers, 'spec.initContainers') ?? [], 'spec.initContainers', c, containerPorts, true);

  const status = c.object(raw.status, 'status') ?? {};
  const podIP = c.string(status.podIP, 'status.podIP', { check: (s) => (isIP(s) ? undefined : 'must be an IP address') });
  const conditions = c.array(status.conditions, 'status.conditions') ?? [];
  let readyCondition: string | undefined;
  conditions.forEach((rc, i) => {
    const o = c.object(rc, `status.conditions[${i}]`, { required: true });
    if (o === undefined) return;
    const type = c.string(o.type, `status.conditions[${i}].type`, { required: true });
    const st = c.oneOf(o.status, `status.conditions[${i}].status`, ['True', 'False', 'Unknown'], true);
    if (type === 'Ready') readyCondition = st;
  });
  const ready = conditions.length > 0 ? readyCondition === 'True' : podIP !== undefined;
  return { kind: 'Pod', meta, serviceAccount, ...(podIP !== undefined ? { podIP } : {}), ready, containerPorts };
}

const ADDRESS_CHECKS: Record<EndpointSlice['addressType'], (s: string) => string | undefined> = {
  IPv4: (s) => (isIPv4(s) ? undefined : 'must be an IPv4 address'),
  IPv6: (s) => (isIPv6(s) ? undefined : 'must be an IPv6 address'),
  FQDN: names.dnsSubdomain,
};

function parseEndpointSlice(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): EndpointSlice {
  const serviceName = meta.labels[SERVICE_NAME_LABEL];
  if (serviceName === undefined) c.error(`metadata.labels[${JSON.stringify(SERVICE_NAME_LABEL)}]`, 'required (the Service this slice belongs to)');
  const addressType = c.oneOf(raw.addressType, 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const, true) ?? 'IPv4';
  const ports: EndpointSlicePort[] = [];
  (c.array(raw.ports, 'ports') ?? []).forEach((rp, i) => {
    const o = c.object(rp, `ports[${i}]`, { required: true });
    if (o === undefined) return;
    const name = c.string(o.name, `ports[${i}].name`, { check: names.dnsLabel });
    const port = c.int(o.port, `ports[${i}].port`, 1, 65535, true);
    const protocol = c.oneOf(o.protocol, `ports[${i}].protocol`, PROTOCOLS) ?? 'TCP';
    const appProtocol = c.string(o.appProtocol, `ports[${i}].appProtocol`);
    if (port === undefined) return;
    ports.push({ ...(name !== undefined ? { name } : {}), port, protocol, ...(appProtocol !== undefined ? { appProtocol } : {}) });
  });
  const endpoints: EndpointSliceEndpoint[] = [];
  (c.array(raw.endpoints, 'endpoints') ?? []).forEach((re, i) => {
    const p = `endpoints[${i}]`;
    const o = c.object(re, p, { required: true });
    if (o === undefined) return;
    const list = c.array(o.addresses, `${p}.addresses`, true) ?? [];
    if (Array.isArray(o.addresses) && list.length === 0) c.error(`${p}.addresses`, 'must list at least one address');
    const addresses = list
      .map((a, j) => c.string(a, `${p}.addresses[${j}]`, { required: true, check: ADDRESS_CHECKS[addressType] }))
      .filter((a): a is string => a !== undefined);
    const conditions = c.object(o.conditions, `${p}.conditions`) ?? {};
    // An unset ready condition means "unknown", which consumers must treat as ready.
    const ready = absent(conditions.ready) ? true : conditions.ready === true;
    if (!absent(conditions.ready) && typeof conditions.ready !== 'boolean') c.error(`${p}.conditions.ready`, 'must be a boolean');
    let targetRef: EndpointSliceEndpoint['targetRef'];
    const tr = c.object(o.targetRef, `${p}.targetRef`);
    if (tr !== undefined) {
      const kind = c.string(tr.kind, `${p}.targetRef.kind`, { required: true });
      const name = c.string(tr.name, `${p}.targetRef.name`, { required: true });
      const namespace = c.string(tr.namespace, `${p}.targetRef.namespace`, { check: names.dnsLabel }) ?? meta.namespace;
      if (kind !== undefined && name !== undefined) targetRef = { kind, name, namespace };
    }
    endpoints.push({ addresses, ready, ...(targetRef ? { targetRef } : {}) });
  });
  return { kind: 'EndpointSlice', meta, serviceName: serviceName ?? '', addressType, ports, endpoints };
}
