/**
 * The three `weft.dev/v1alpha1` CustomResourceDefinitions, assembled from the spec schemas of
 * `crd-traffic-policy.ts`, `crd-peer-auth.ts` and `crd-authz.ts`, with the shared `status`
 * (subresource), names and printer columns. `crdDocuments()` is what `npm run gen:crds` writes;
 * it is deterministic (fixed key order, no timestamps).
 */
import { stringify } from 'yaml';
import { type Schema, s } from './crd-schema';
import { STATUS } from './crd-fields';
import { TRAFFIC_POLICY_SPEC } from './crd-traffic-policy';
import { PEER_AUTHENTICATION_SPEC } from './crd-peer-auth';
import { AUTHORIZATION_POLICY_SPEC } from './crd-authz';

export const CRD_GROUP = 'weft.dev';
export const CRD_VERSION = 'v1alpha1';

interface Column {
  readonly name: string;
  readonly type: 'string' | 'date' | 'integer';
  readonly jsonPath: string;
  readonly description?: string;
  readonly priority?: number;
}

/** One CRD: its names, its spec schema and its printer columns. */
export interface CrdKind {
  readonly kind: 'TrafficPolicy' | 'PeerAuthentication' | 'AuthorizationPolicy';
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly description: string;
  readonly spec: Schema;
  readonly specRequired: boolean;
  /** Columns between Target and Accepted. */
  readonly columns: readonly Column[];
  readonly target: Column;
}

const ACCEPTED = '.status.conditions[?(@.type=="Accepted")]';

export const CRD_KINDS: readonly CrdKind[] = [
  {
    kind: 'TrafficPolicy',
    plural: 'trafficpolicies',
    singular: 'trafficpolicy',
    shortNames: ['tp'],
    description: 'Governs calls to one Service, from every client in the mesh: subsets, routes, retries, timeouts, load balancing.',
    spec: TRAFFIC_POLICY_SPEC,
    specRequired: true,
    target: { name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name', description: 'The Service it governs.' },
    columns: [],
  },
  {
    kind: 'PeerAuthentication',
    plural: 'peerauthentications',
    singular: 'peerauthentication',
    shortNames: ['pa'],
    description: 'Whether workloads accept plaintext, mesh mTLS or both (Istio\'s PeerAuthentication).',
    spec: PEER_AUTHENTICATION_SPEC,
    specRequired: false,
    target: { name: 'Target', type: 'string', jsonPath: '.spec.selector.matchLabels', description: 'The selected pods (empty: the namespace).' },
    columns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode' }],
  },
  {
    kind: 'AuthorizationPolicy',
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    shortNames: ['ap'],
    description: 'Who may call a workload, enforced by its sidecar (Istio\'s AuthorizationPolicy, ALLOW and DENY).',
    spec: AUTHORIZATION_POLICY_SPEC,
    specRequired: false,
    target: { name: 'Target', type: 'string', jsonPath: '.spec.selector.matchLabels', description: 'The selected pods (empty: the namespace).' },
    columns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action' }],
  },
];

/** The root schema of one kind: apiVersion, kind, metadata, spec, status. */
export function rootSchema(k: CrdKind): Schema {
  return s.object(
    {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: k.spec,
      status: STATUS,
    },
    { description: k.description, required: k.specRequired ? ['spec'] : [] },
  );
}

/** The CustomResourceDefinition object of one kind. */
export function customResourceDefinition(k: CrdKind): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${k.plural}.${CRD_GROUP}`,
      labels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/part-of': 'weft' },
    },
    spec: {
      group: CRD_GROUP,
      names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.singular, shortNames: k.shortNames, categories: ['weft'] },
      scope: 'Namespaced',
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            k.target,
            ...k.columns,
            { name: 'Accepted', type: 'string', jsonPath: `${ACCEPTED}.status` },
            { name: 'Reason', type: 'string', jsonPath: `${ACCEPTED}.reason`, priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: rootSchema(k) },
        },
      ],
    },
  };
}

/** The file name `npm run gen:crds` writes for a kind: `weft.dev_<plural>.yaml`. */
export function crdFileName(k: CrdKind): string {
  return `${CRD_GROUP}_${k.plural}.yaml`;
}

/**
 * kubectl reads YAML 1.1, where `y`, `no` or `on` are booleans: written as 1.1, such strings are
 * quoted, so every reader sees the same document.
 */
export const YAML_OPTIONS = { version: '1.1', lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false } as const;

const HEADER = '# Generated by `npm run gen:crds` from api/src/crd-*.ts: do not edit.\n';

/** Every CRD file, `{name, text}`, in a fixed order. */
export function crdDocuments(): { name: string; text: string }[] {
  return CRD_KINDS.map((k) => ({
    name: crdFileName(k),
    text: HEADER + stringify(customResourceDefinition(k), YAML_OPTIONS),
  }));
}
