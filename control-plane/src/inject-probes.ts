/**
 * Kubelet probes under STRICT mTLS, the injector's half (docs/configuration.md, "Probes under
 * mTLS"). With STRICT inbound mTLS the kubelet, which has no mesh certificate, cannot reach an
 * app port through the sidecar. As Istio does, each app container's HTTP, TCP and gRPC probe is
 * rewritten to `GET /app-health/<container>/<livez|readyz|startupz>` on the sidecar's health port
 * (15021, never captured, plaintext), and the original probes are handed to the sidecar in the
 * `WEFT_APP_PROBES` environment variable (Istio's `ISTIO_KUBE_APP_PROBERS` format); the sidecar
 * runs them against the app locally (sidecar/src/app-probe.ts).
 *
 * Pure: a Pod spec (raw Kubernetes JSON) in, a new spec and the env value out; the input is never
 * changed. The injector (`inject-pod.ts`) calls it. `exec` probes stay as they are (they run inside the
 * container), and so does a pod annotated `weft.dev/rewrite-app-probes: "false"`.
 */
type Obj = Record<string, any>;

export const APP_PROBES_ENV = 'WEFT_APP_PROBES';
export const REWRITE_PROBES_ANNOTATION = 'weft.dev/rewrite-app-probes';
export const SIDECAR_HEALTH_PORT = 15021;

const KINDS = [['livenessProbe', 'livez'], ['readinessProbe', 'readyz'], ['startupProbe', 'startupz']] as const;
/** Timing fields kept on the rewritten probe: the kubelet still decides when and how often. */
const TIMING = ['initialDelaySeconds', 'periodSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold', 'terminationGracePeriodSeconds'];

export interface ProbeRewrite {
  /** The Pod spec with probes pointing at the sidecar (the input itself when nothing changed). */
  readonly spec: Obj;
  /** The value of `WEFT_APP_PROBES` for the sidecar container; `undefined` when no probe was rewritten. */
  readonly appProbes: string | undefined;
  /** Probes left as they were, and why (a named port the container does not declare). */
  readonly problems: readonly string[];
}

export interface ProbeRewriteOptions {
  /** The sidecar container's name: its own probes are never rewritten. Default `weft-proxy`. */
  readonly sidecarName?: string;
  readonly healthPort?: number;
  /** The Pod's annotations (for the opt-out). */
  readonly annotations?: Readonly<Record<string, string>>;
}

export function rewriteAppProbes(spec: Obj, opts: ProbeRewriteOptions = {}): ProbeRewrite {
  if (opts.annotations?.[REWRITE_PROBES_ANNOTATION] === 'false') return { spec, appProbes: undefined, problems: [] };
  const sidecar = opts.sidecarName ?? 'weft-proxy';
  const healthPort = opts.healthPort ?? SIDECAR_HEALTH_PORT;
  const probes: Obj = {};
  const problems: string[] = [];
  const containers = (spec.containers ?? []).map((c: Obj) => {
    if (c.name === sidecar) return c;
    let changed: Obj | undefined;
    for (const [field, kind] of KINDS) {
      const probe: Obj | undefined = c[field];
      if (!probe || probe.exec) continue;
      const handler = probe.httpGet ? 'httpGet' : probe.tcpSocket ? 'tcpSocket' : probe.grpc ? 'grpc' : undefined;
      if (!handler) continue;
      const port = resolvePort(probe[handler].port, c);
      if (port === undefined) {
        problems.push(`container ${c.name} ${field}: port ${JSON.stringify(probe[handler].port)} is not a port of the container; probe left unchanged`);
        continue;
      }
      const path = `/app-health/${c.name}/${kind}`;
      // With the API server's defaults filled in (scheme HTTP, a 1 s timeout), so the webhook (which
      // sees a defaulted pod) and `weft inject -f` (which does not) write the same WEFT_APP_PROBES.
      const target: Obj = { ...probe[handler], port };
      if (handler === 'httpGet' && target.scheme === undefined) target.scheme = 'HTTP';
      probes[path] = { [handler]: target, timeoutSeconds: probe.timeoutSeconds ?? 1 };
      const timing = Object.fromEntries(TIMING.filter((k) => probe[k] !== undefined).map((k) => [k, probe[k]]));
      changed = { ...(changed ?? c), [field]: { ...timing, httpGet: { path, port: healthPort, scheme: 'HTTP' } } };
    }
    return changed ?? c;
  });
  if (!Object.keys(probes).length) return { spec, appProbes: undefined, problems };
  return { spec: { ...spec, containers }, appProbes: JSON.stringify(probes), problems };
}

/** A probe port as the kubelet resolves it: a number, or the name of one of the container's ports. */
function resolvePort(port: unknown, c: Obj): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  const named = (c.ports ?? []).find((p: Obj) => p.name === port);
  return typeof named?.containerPort === 'number' ? named.containerPort : undefined;
}
