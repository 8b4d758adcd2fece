/**
 * `weft sidecar`: runs the proxy, configured by SPEC.md's environment (`WEFT_XDS_ADDRESS`,
 * `POD_NAME`, `POD_NAMESPACE`, `POD_IP`, `SERVICE_ACCOUNT`, `WEFT_TRUST_DOMAIN`) and a few flags,
 * until SIGINT/SIGTERM. Every missing or malformed variable is reported, one line each.
 */
import { createLogger } from '@weft/api';
import { sidecarOptionsFromEnv, startSidecar, type SidecarOptions } from '@weft/sidecar';
import { booleanFlag, parseInteger, parsePort, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { UsageError } from './errors';
import { EXIT_WITH_PARENT_FLAG, serveUntilStopped } from './lifecycle';
import { missingNodeFlags, SIDECAR_NODE_FLAGS } from './node-flags';

/** Applies the flag overrides to the options read from the environment. Throws UsageError. */
function withFlags(base: SidecarOptions, args: ParsedArgs): SidecarOptions {
  const admin = stringFlag(args, 'admin-port');
  const health = stringFlag(args, 'health-port');
  const metrics = stringFlag(args, 'metrics-port');
  const drain = stringFlag(args, 'drain-timeout');
  return {
    ...base,
    ...(admin !== undefined ? { adminPort: parsePort(admin, '--admin-port') } : {}),
    ...(health !== undefined ? { healthPort: parsePort(health, '--health-port') } : {}),
    ...(metrics !== undefined ? { metricsPort: parsePort(metrics, '--metrics-port') } : {}),
    ...(drain !== undefined ? { drainTimeoutMs: parseInteger(drain, '--drain-timeout', 0, 600_000) } : {}),
  };
}

async function run(args: ParsedArgs): Promise<number> {
  const fromEnv = sidecarOptionsFromEnv(process.env);
  if (!fromEnv.options) {
    const [first, ...rest] = fromEnv.errors;
    throw new UsageError(first ?? 'invalid environment', { more: rest });
  }
  const options = withFlags(fromEnv.options, args);
  const log = createLogger({ component: 'sidecar', pod: `${options.namespace}/${options.podName}` });
  const missing = missingNodeFlags(SIDECAR_NODE_FLAGS);
  if (missing.length) log.info('node started without the recommended flags; the sidecar needs more memory without them (docs/performance.md)', { missing });

  return serveUntilStopped(
    async () => {
      const sidecar = await startSidecar({ ...options, log });
      log.info('sidecar started; ready once the first config arrives', { podIp: options.podIp, xds: options.xdsAddress });
      sidecar.ready.then(
        () => log.info('sidecar ready'),
        () => undefined, // the sidecar logs its own failures; a closed sidecar never turns ready
      );
      return sidecar;
    },
    { log, exitWithParent: booleanFlag(args, 'exit-with-parent'), what: 'sidecar' },
  );
}

export const sidecarCommand: Command = {
  name: 'sidecar',
  summary: 'run the sidecar proxy (configured by the environment)',
  usage: 'weft sidecar [--admin-port N] [--health-port N] [--metrics-port N] [--drain-timeout MS]',
  description: [
    'Runs the sidecar proxy for one pod. It connects to the control plane over xDS, applies\n' +
      'the configuration it is sent, and binds every port on POD_IP: 15001 outbound, 15006\n' +
      'inbound, 15000 admin (/config_dump), 15020 /metrics (Prometheus), 15021 /healthz/ready\n' +
      '(ready after the first config).',
    'Environment:\n' +
      '  WEFT_XDS_ADDRESS   host:port of the control plane (required)\n' +
      '  POD_NAME           the pod this sidecar serves (required)\n' +
      '  POD_NAMESPACE      its namespace (required)\n' +
      '  POD_IP             its address; every port binds here (required)\n' +
      '  SERVICE_ACCOUNT    its service account (default "default")\n' +
      '  WEFT_TRUST_DOMAIN  SPIFFE trust domain (default cluster.local)\n' +
      '  WEFT_CAPTURE       true when iptables capture is installed (weft capture-init)\n' +
      '  WEFT_LOG_LEVEL     debug | info | warn | error | silent (default info)',
    'Start node with ' + SIDECAR_NODE_FLAGS.join(' ') + ' (or put them in NODE_OPTIONS): they\n' +
      'keep its memory small (docs/performance.md); weft demo does so for its sidecars.',
    'Logs are JSON lines on stderr. SIGINT or SIGTERM leaves the control plane, keeps accepting\n' +
      'while callers still connect (at least 2 s), drains and exits 0; a second signal stops at once.',
  ],
  flags: [
    { name: 'admin-port', type: 'string', placeholder: 'N', help: 'admin port (default 15000)' },
    { name: 'health-port', type: 'string', placeholder: 'N', help: 'health port serving /healthz/ready (default 15021)' },
    { name: 'metrics-port', type: 'string', placeholder: 'N', help: 'Prometheus port serving /metrics (default 15020)' },
    { name: 'drain-timeout', type: 'string', placeholder: 'MS', help: 'longest graceful drain on SIGTERM, in ms (default 5000)' },
    EXIT_WITH_PARENT_FLAG,
  ],
  available: true,
  run,
};
