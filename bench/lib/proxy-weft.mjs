// Variant (b): the Weft sidecar pair in local mode. Writes a manifest directory (namespace
// `bench`: pod `client`, pod `server` whose apps are the upstreams, Service `server` with port
// `http` 80 -> 8080 and port `grpc` 9090 -> 9090, appProtocol grpc),
// starts `weft control-plane --manifests` and one `weft sidecar` per pod, and waits until both
// sidecars answer /healthz/ready and the client's outbound route reaches the upstream.
// `cpuProf` starts both sidecars under `node --cpu-prof` (written when they exit). Measures nothing itself.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { httpStatus, start, tcpOpen, waitFor } from './procs.mjs';

export const NAMESPACE = 'bench';
export const SERVICE_HOST = `server.${NAMESPACE}.svc.cluster.local`;
/** The `:authority` a gRPC client of the Service uses (the outbound listener routes by it). */
export const grpcAuthority = (port) => `${SERVICE_HOST}:${port}`;

function manifests(clientIp, serverIp, appPort, grpcPort) {
  const pod = (name, ip, ports) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${NAMESPACE}
  labels:
    app: ${name}
spec:
  serviceAccountName: ${name}
  containers:
  - name: app
    image: bench/${name}${ports}
status:
  podIP: ${ip}
`;
  return `${pod('client', clientIp, '')}---
${pod('server', serverIp, `\n    ports:\n    - name: http\n      containerPort: ${appPort}\n    - name: grpc\n      containerPort: ${grpcPort}`)}---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: ${NAMESPACE}
spec:
  selector:
    app: server
  ports:
  - name: http
    port: 80
    targetPort: ${appPort}
  - name: grpc
    port: ${grpcPort}
    targetPort: ${grpcPort}
    appProtocol: grpc
`;
}

/**
 * The node flags both sidecars run with: WEFT_BENCH_NODE_FLAGS when set (even empty: none), else
 * the CLI's SIDECAR_NODE_FLAGS (cli/src/node-flags.ts), as `weft demo` starts its sidecars.
 */
export function sidecarNodeFlags(root) {
  const env = process.env.WEFT_BENCH_NODE_FLAGS;
  if (env !== undefined) return env.split(/\s+/).filter(Boolean);
  return [...createRequire(import.meta.url)(join(root, 'cli/dist/src/node-flags.js')).SIDECAR_NODE_FLAGS];
}

/**
 * Starts the control plane and both sidecars (with `nodeFlags`, by default sidecarNodeFlags()). Returns { controlPlane, client, server } processes;
 * the sidecars' pids are what /proc is read for.
 */
export async function startWeftPair(dir, { root, cpIp, clientIp, serverIp, appPort, grpcPort, cpuProf, nodeFlags, checkRoute = true, launcher, identity = false }) {
  const main = join(root, 'cli/dist/src/main.js');
  const mdir = join(dir, 'manifests');
  mkdirSync(mdir, { recursive: true });
  writeFileSync(join(mdir, 'bench.yaml'), manifests(clientIp, serverIp, appPort, grpcPort));
  const quiet = { WEFT_LOG_LEVEL: 'warn' };

  const xds = `${cpIp}:15010`;
  const dataDir = join(dir, 'data');
  const identityEnv = (pod) => (identity
    ? { WEFT_TOKEN_PATH: join(dataDir, 'tokens', NAMESPACE, pod, 'token'), WEFT_CA_ROOT_CERT: join(dataDir, 'ca', 'root-cert.pem'), WEFT_CA_ADDRESS: `${cpIp}:15012` }
    : {});
  const controlPlane = start(
    'weft control-plane',
    process.execPath,
    // `identity`: the control plane's CA issues each sidecar its certificate (what a mesh with mTLS
    // runs); otherwise no CA at all (and nothing written outside `dir`).
    [main, 'control-plane', '--manifests', mdir, '--xds-address', xds, '--debug-address', `${cpIp}:15014`, '--exit-with-parent',
      ...(identity ? ['--data-dir', dataDir, '--ca-address', `${cpIp}:15012`] : ['--no-ca']),
      // Tracing cost runs (docs/performance.md): WEFT_BENCH_TRACING="URL PERCENT".
      ...(process.env.WEFT_BENCH_TRACING ? ['--tracing-endpoint', process.env.WEFT_BENCH_TRACING.split(' ')[0], '--tracing-sampling', process.env.WEFT_BENCH_TRACING.split(' ')[1] ?? '1'] : [])],
    { env: quiet, logPath: join(dir, 'control-plane.log'), pdeathsig: false, stdinPipe: true },
  );
  await waitFor(controlPlane, () => tcpOpen(cpIp, 15010), `listening on ${xds}`);

  const sidecar = (pod, ip, nodeFlags = []) => {
    // `launcher` (the mTLS variant): another script standing in for `weft sidecar`, with extra env.
    const command = launcher ? [launcher.script] : [main, 'sidecar'];
    const p = start(`sidecar of ${pod}`, process.execPath, [...nodeFlags, ...command, '--exit-with-parent'], {
      env: { ...quiet, WEFT_XDS_ADDRESS: xds, POD_NAME: pod, POD_NAMESPACE: NAMESPACE, POD_IP: ip, SERVICE_ACCOUNT: pod, ...identityEnv(pod), ...(launcher?.env(pod) ?? {}) },
      logPath: join(dir, `sidecar-${pod}.log`),
      pdeathsig: false,
      stdinPipe: true,
    });
    return p;
  };
  const profDir = join(dir, 'cpu-prof');
  const extra = nodeFlags ?? sidecarNodeFlags(root);
  const prof = (pod) => [...extra, ...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `sidecar-${pod}.cpuprofile`] : [])];
  const client = sidecar('client', clientIp, prof('client'));
  const server = sidecar('server', serverIp, prof('server'));
  for (const [p, ip] of [[client, clientIp], [server, serverIp]]) {
    await waitFor(p, async () => (await httpStatus(`http://${ip}:15021/healthz/ready`)) === 200, 'ready');
  }
  // Ready means configured; the client's endpoints must also point at the server's sidecar
  // (the control plane re-pushes them once the server's sidecar connects).
  if (checkRoute)
    await waitFor(
    client,
    async () => (await httpStatus(`http://${clientIp}:15001/`, { host: SERVICE_HOST })) === 200,
    `routing ${SERVICE_HOST} to the upstream`,
  );
  return { controlPlane, client, server, profDir, nodeFlags: extra };
}
