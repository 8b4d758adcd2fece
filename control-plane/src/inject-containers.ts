/**
 * What the injector adds to a pod, as raw Kubernetes JSON (the contract of issue 8; docs/operations.md,
 * "Sidecar injection"): the `weft-init` init container (`weft capture-init`), the `weft-proxy`
 * sidecar (`weft sidecar`, started with the shared node flags) and the three volumes the sidecar
 * mounts. Pure builders: config and per-pod settings in, new objects out.
 */
import { SIDECAR_NODE_FLAGS } from '@weft/api';
import { captureArgs, type CaptureSettings } from './inject-capture';
import type { InjectionConfig, Resources } from './inject-config';
import { APP_PROBES_ENV, SIDECAR_HEALTH_PORT } from './inject-probes';

type Obj = Record<string, any>;

export const PROXY_CONTAINER = 'weft-proxy';
export const INIT_CONTAINER = 'weft-init';
export const TOKEN_VOLUME = 'weft-token';
export const ROOT_CA_VOLUME = 'weft-root-ca';
export const TMP_VOLUME = 'weft-tmp';
/** The ConfigMap the leader writes into every injected namespace (key `root-cert.pem`). */
export const ROOT_CA_CONFIGMAP = 'weft-root-ca';
/** `weft` inside the image. */
export const WEFT_MAIN = '/opt/weft/cli/dist/src/main.js';
export const TOKEN_DIR = '/var/run/secrets/tokens';
export const TOKEN_PATH = `${TOKEN_DIR}/weft-token`;
export const ROOT_CA_DIR = '/var/run/weft/ca';
export const ROOT_CA_PATH = `${ROOT_CA_DIR}/root-cert.pem`;
export const TOKEN_AUDIENCE = 'weft';
export const TOKEN_EXPIRATION_SECONDS = 3600;
export const READY_PATH = '/healthz/ready';

const fieldEnv = (name: string, fieldPath: string): Obj => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });

function resourcesJson(r: Resources): Obj {
  const out: Obj = {};
  if (Object.keys(r.limits).length) out.limits = { ...r.limits };
  if (Object.keys(r.requests).length) out.requests = { ...r.requests };
  return out;
}

/** The sidecar container. `native`: an init container that keeps running (`restartPolicy: Always`). */
export function proxyContainer(config: InjectionConfig, resources: Resources, appProbes: string | undefined, native: boolean): Obj {
  const readyProbe = (): Obj => ({ httpGet: { path: READY_PATH, port: SIDECAR_HEALTH_PORT, scheme: 'HTTP' }, timeoutSeconds: 3 });
  return {
    name: PROXY_CONTAINER,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ['node', ...SIDECAR_NODE_FLAGS, WEFT_MAIN, 'sidecar'],
    args: ['--drain-timeout', String(config.drainTimeoutMs)],
    env: [
      { name: 'WEFT_XDS_ADDRESS', value: config.xdsAddress },
      { name: 'WEFT_TRUST_DOMAIN', value: config.trustDomain },
      fieldEnv('POD_NAME', 'metadata.name'),
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('POD_IP', 'status.podIP'),
      fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
      { name: 'WEFT_TOKEN_PATH', value: TOKEN_PATH },
      { name: 'WEFT_CA_ROOT_CERT', value: ROOT_CA_PATH },
      { name: 'WEFT_CAPTURE', value: 'true' },
      { name: 'WEFT_LOG_LEVEL', value: config.logLevel },
      ...(appProbes !== undefined ? [{ name: APP_PROBES_ENV, value: appProbes }] : []),
    ],
    resources: resourcesJson(resources),
    // Until the first config is applied the app must not start (native) and the pod is not ready;
    // 10 minutes of one-second tries, as Istio's native sidecar.
    startupProbe: { ...readyProbe(), periodSeconds: 1, failureThreshold: 600 },
    readinessProbe: { ...readyProbe(), periodSeconds: 15, failureThreshold: 4 },
    securityContext: {
      runAsUser: config.proxyUid,
      runAsGroup: config.proxyUid,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: ROOT_CA_VOLUME, mountPath: ROOT_CA_DIR, readOnly: true },
      { name: TMP_VOLUME, mountPath: '/tmp' },
    ],
    ...(native ? { restartPolicy: 'Always' } : {}),
  };
}

/** The init container installing the capture rules. Root with NET_ADMIN and NET_RAW only: iptables needs them, nothing more. */
export function initContainer(config: InjectionConfig, capture: CaptureSettings): Obj {
  return {
    name: INIT_CONTAINER,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ['node', WEFT_MAIN, 'capture-init'],
    args: captureArgs(capture, config.proxyUid),
    resources: resourcesJson(config.initResources),
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      // iptables takes its lock under /run: the root file system stays writable here, as in Istio's istio-init.
      readOnlyRootFilesystem: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

/** The projected token (audience `weft`), the root CA ConfigMap and the sidecar's writable /tmp. */
export function injectedVolumes(): Obj[] {
  return [
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: 'weft-token' } }] } },
    { name: ROOT_CA_VOLUME, configMap: { name: ROOT_CA_CONFIGMAP } },
    { name: TMP_VOLUME, emptyDir: {} },
  ];
}
