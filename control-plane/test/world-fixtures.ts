/** Builders for typed Kubernetes objects and worlds, shared by control-plane tests. */
import type { KubeObject, Pod, Service, TrafficPolicy, ObjectMeta, RouteSpec } from '@weft/api';
import { buildWorld, type World } from '../src/world';

export function meta(name: string, namespace = 'shop', labels: Record<string, string> = {}, creationTimestamp?: string): ObjectMeta {
  return { name, namespace, labels, annotations: {}, ...(creationTimestamp ? { creationTimestamp } : {}) };
}

export function service(name: string, ports: { name?: string; port: number; targetPort?: number | string }[], selector: Record<string, string> = { app: name }, namespace = 'shop'): Service {
  return {
    kind: 'Service',
    meta: meta(name, namespace),
    selector,
    ports: ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort ?? p.port, protocol: 'TCP' as const })),
  };
}

export function pod(name: string, ip: string, labels: Record<string, string>, opts: { ready?: boolean; namespace?: string; ports?: { name: string; containerPort: number }[] } = {}): Pod {
  return {
    kind: 'Pod',
    meta: meta(name, opts.namespace ?? 'shop', labels),
    serviceAccount: 'default',
    podIP: ip,
    ready: opts.ready ?? true,
    containerPorts: (opts.ports ?? []).map((p) => ({ ...p, protocol: 'TCP' as const })),
  };
}

export function policy(name: string, target: string, routes: RouteSpec[], subsets: { name: string; labels: Record<string, string> }[] = [], creationTimestamp?: string): TrafficPolicy {
  return {
    kind: 'TrafficPolicy',
    meta: meta(name, 'shop', {}, creationTimestamp),
    targetRef: { kind: 'Service', name: target },
    subsets,
    routes,
    notYetSupported: [],
    extra: {},
  };
}

export function world(objects: KubeObject[], meshed: string[] = []): World {
  return buildWorld(objects, new Set(meshed), 1);
}

export const split = (v1: number, v2: number): RouteSpec => ({
  name: 'default',
  match: [],
  backends: [{ kind: 'subset', subset: 'v1', weight: v1 }, { kind: 'subset', subset: 'v2', weight: v2 }],
});

export const SUBSETS = [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }];

/** The usual shop: a frontend and a backend with v1 and v2 pods. */
export function shop(): KubeObject[] {
  return [
    service('frontend', [{ name: 'http', port: 80, targetPort: 8080 }]),
    service('backend', [{ name: 'http', port: 80, targetPort: 8080 }]),
    pod('frontend', '127.0.0.11', { app: 'frontend' }),
    pod('backend-v1', '127.0.0.21', { app: 'backend', version: 'v1' }),
    pod('backend-v2', '127.0.0.22', { app: 'backend', version: 'v2' }),
  ];
}
