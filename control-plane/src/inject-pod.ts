/**
 * The sidecar injector: a pure function from a pod (or a pod template: anything with `metadata`
 * and a pod `spec`) to the injected pod, or the reason it is left alone. The admission webhook
 * (`POST /inject`) and `weft inject -f` both call it, so they give the same result.
 *
 * Skipped, as Istio skips them: a pod annotated `weft.dev/inject: "false"`, a pod already injected
 * (annotation `weft.dev/status` or a `weft-proxy` container: injecting twice changes nothing), a
 * `hostNetwork` pod (capture would rewrite the node's iptables), and pods of `kube-system` and
 * `kube-public`. Refused: a pod whose injector annotations have bad values, or whose names collide
 * with what would be added; nothing is injected half-way.
 *
 * Added (inject-containers.ts): `weft-init` as the first init container; `weft-proxy` right after
 * it with `restartPolicy: Always` (a native sidecar: later init containers and the app start once
 * its startup probe passes, and a Job completes when its app containers exit) or, with
 * `nativeSidecar: false`, as the first regular container; the volumes; the app's probes rewritten
 * to the sidecar (inject-probes.ts); annotation `weft.dev/status` saying what was added.
 */
import { TLS_MODE_LABEL } from './world';
import { CAPTURE_FIELDS, checkCaptureValue, type CaptureSettings } from './inject-capture';
import { quantityError, type InjectionConfig, type Resources } from './inject-config';
import { INIT_CONTAINER, initContainer, injectedVolumes, PROXY_CONTAINER, proxyContainer } from './inject-containers';
import { rewriteAppProbes } from './inject-probes';

type Obj = Record<string, any>;

export const INJECT_ANNOTATION = 'weft.dev/inject';
export const STATUS_ANNOTATION = 'weft.dev/status';
/** Namespaces never injected, whatever their labels (Istio ignores the same two). */
export const NEVER_INJECTED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public'];

/** Per-pod sidecar resources, as Istio's `sidecar.istio.io/proxyCPU` and friends. */
export const RESOURCE_ANNOTATIONS: readonly { readonly annotation: string; readonly section: 'requests' | 'limits'; readonly resource: 'cpu' | 'memory' }[] = [
  { annotation: 'sidecar.weft.dev/proxyCPU', section: 'requests', resource: 'cpu' },
  { annotation: 'sidecar.weft.dev/proxyMemory', section: 'requests', resource: 'memory' },
  { annotation: 'sidecar.weft.dev/proxyCPULimit', section: 'limits', resource: 'cpu' },
  { annotation: 'sidecar.weft.dev/proxyMemoryLimit', section: 'limits', resource: 'memory' },
];

/** The value of `weft.dev/status`: what the injector added, by name. */
export interface InjectionStatus {
  readonly initContainers: readonly string[];
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
}

export type InjectOutcome =
  | { readonly kind: 'injected'; readonly pod: Obj; readonly status: InjectionStatus; readonly warnings: readonly string[] }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * Injects `pod` (a Pod, or a template `{metadata, spec}`) of `namespace`. Never changes its input
 * and never throws for any decoded JSON object; `warnings` are probes that could not be rewritten.
 */
export { TLS_MODE_LABEL };

export function injectPod(pod: Obj, namespace: string, config: InjectionConfig): InjectOutcome {
  const annotations: Record<string, unknown> = pod.metadata?.annotations ?? {};
  const spec: Obj | undefined = pod.spec;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return { kind: 'refused', reason: 'the pod has no spec' };
  const shape = shapeError(pod, spec);
  if (shape) return { kind: 'refused', reason: shape };
  if (annotations[INJECT_ANNOTATION] === 'false') return { kind: 'skipped', reason: `opted out: annotation ${INJECT_ANNOTATION}: "false"` };
  const all = [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as Obj[];
  if (annotations[STATUS_ANNOTATION] !== undefined || all.some((c) => c?.name === PROXY_CONTAINER)) {
    return { kind: 'skipped', reason: 'already injected' };
  }
  if (spec.hostNetwork === true) return { kind: 'skipped', reason: 'hostNetwork pod: capture would change the node\'s own traffic' };
  if (NEVER_INJECTED_NAMESPACES.includes(namespace)) return { kind: 'skipped', reason: `namespace ${namespace} is never injected` };

  const problems: string[] = [];
  const capture = captureFor(annotations, config.capture, problems);
  const resources = resourcesFor(annotations, config.resources, problems);
  if (all.some((c) => c?.name === INIT_CONTAINER)) problems.push(`the pod already has a container named ${INIT_CONTAINER}`);
  const volumes = injectedVolumes();
  for (const v of spec.volumes ?? []) {
    if (volumes.some((w) => w.name === v?.name)) problems.push(`the pod already has a volume named ${v.name}`);
  }
  if (problems.length) return { kind: 'refused', reason: problems.join('; ') };

  const probes = rewriteAppProbes(spec, { sidecarName: PROXY_CONTAINER, annotations: annotations as Record<string, string> });
  const proxy = proxyContainer(config, resources, probes.appProbes, config.nativeSidecar);
  const init = initContainer(config, capture);
  const status: InjectionStatus = {
    initContainers: config.nativeSidecar ? [INIT_CONTAINER, PROXY_CONTAINER] : [INIT_CONTAINER],
    containers: config.nativeSidecar ? [] : [PROXY_CONTAINER],
    volumes: volumes.map((v) => v.name as string),
  };
  const newSpec: Obj = {
    ...probes.spec,
    initContainers: config.nativeSidecar ? [init, proxy, ...(spec.initContainers ?? [])] : [init, ...(spec.initContainers ?? [])],
    containers: config.nativeSidecar ? probes.spec.containers : [proxy, ...(probes.spec.containers ?? [])],
    volumes: [...(spec.volumes ?? []), ...volumes],
  };
  const injected: Obj = {
    ...pod,
    metadata: {
      ...(pod.metadata ?? {}),
      // Callers use mTLS to this pod whichever control-plane replica its sidecar talks to (world.ts).
      labels: { ...(pod.metadata?.labels ?? {}), [TLS_MODE_LABEL]: 'weft' },
      annotations: { ...annotations, [STATUS_ANNOTATION]: JSON.stringify(status) },
    },
    spec: newSpec,
  };
  return { kind: 'injected', pod: injected, status, warnings: probes.problems };
}

/** What the API server guarantees and `weft inject` input may lack: lists where lists belong, objects in them. */
function shapeError(pod: Obj, spec: Obj): string | undefined {
  const meta = pod.metadata;
  if (meta !== undefined && meta !== null && (typeof meta !== 'object' || Array.isArray(meta))) return 'metadata must be an object';
  const ann = meta?.annotations;
  if (ann !== undefined && ann !== null && (typeof ann !== 'object' || Array.isArray(ann))) return 'metadata.annotations must be an object';
  for (const field of ['containers', 'initContainers', 'volumes'] as const) {
    const v = spec[field];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v)) return `spec.${field} must be a list`;
    const bad = v.findIndex((x) => typeof x !== 'object' || x === null || Array.isArray(x));
    if (bad >= 0) return `spec.${field}[${bad}] must be an object`;
  }
  return undefined;
}

function captureFor(annotations: Record<string, unknown>, base: CaptureSettings, problems: string[]): CaptureSettings {
  const out: Record<string, string> = { ...base };
  for (const f of CAPTURE_FIELDS) {
    const v = annotations[f.annotation];
    if (v === undefined) continue;
    const r = checkCaptureValue(String(v), f.kind, f.star);
    if ('error' in r) problems.push(`annotation ${f.annotation}: ${r.error}`);
    else out[f.key] = r.value;
  }
  return out as unknown as CaptureSettings;
}

function resourcesFor(annotations: Record<string, unknown>, base: Resources, problems: string[]): Resources {
  const requests: Record<string, string> = { ...base.requests };
  const limits: Record<string, string> = { ...base.limits };
  for (const r of RESOURCE_ANNOTATIONS) {
    const v = annotations[r.annotation];
    if (v === undefined) continue;
    const why = quantityError(String(v));
    if (why) problems.push(`annotation ${r.annotation}: ${why}`);
    else (r.section === 'requests' ? requests : limits)[r.resource] = String(v);
  }
  return { requests, limits };
}
