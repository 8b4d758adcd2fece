/**
 * `weft demo` (`npm start`): the local demo mesh. It copies `manifests/demo/` to a temp dir,
 * runs `weft control-plane --manifests <copy>` and one `weft sidecar` per pod as child processes,
 * runs the apps in this process (demo-apps.ts) and sends traffic frontend → backend v1/v2 under
 * the 90/10 TrafficPolicy. `--requests N` sends N requests, prints a summary and exits 0 when none
 * failed; otherwise it runs until Ctrl-C with a live summary line.
 *
 * Whatever ends it — Ctrl-C, SIGTERM, an error, a child dying — it stops the children (SIGTERM,
 * SIGKILL after 3 s), closes the apps and removes the temp dir; a second signal skips the grace.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInteger, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { DEFAULT_TRACE_LISTEN } from './cmd-trace';
import { UsageError } from './errors';
import { startBackend, startFrontend, type DemoApp } from './demo-apps';
import { childError, spawnWeft, waitForPort, waitForReady, type WeftChild } from './demo-children';
import { formatLiveLine, formatSummary, LoadStats, runFixed, runPaced, type LoadTarget } from './demo-load';
import { stopRequests } from './lifecycle';
import {
  APP_PORT, CONTROL_PLANE_PORTS, DEFAULT_BASE_IP, DEMO_NAMESPACE, POLICY_FILE, SIDECAR_PORTS,
  demoLayout, parseBaseIp, prepareManifests, type DemoLayout,
} from './demo-topology';

const MANIFESTS_DIR = join(__dirname, '..', '..', '..', 'manifests', 'demo');
const CONTROL_PLANE_START_MS = 15_000;
const SIDECAR_READY_MS = 30_000;
const STOP_GRACE_MS = 3_000;
const FIXED_CONCURRENCY = 8;
/** `weft trace`'s default address; 2% of the live load's 100 req/s is two traces a second. */
const DEMO_TRACING_ENDPOINT = `http://${DEFAULT_TRACE_LISTEN}/v1/traces`;
const DEMO_TRACING_PERCENT = 2;
/** Live mode is paced so that a demo left running does not eat the machine. */
const LIVE_RATE_PER_SECOND = 100;
const LIVE_CONCURRENCY = 4;
const REQUEST_TIMEOUT_MS = 10_000;

const TEMP_PREFIX = 'weft-demo-';

/**
 * Removes temp dirs left by demos that were SIGKILLed (their children exit on their own, but
 * nobody was left to delete the dir): each holds `demo.pid`, and a dead pid means stale.
 */
function sweepStaleTempDirs(): void {
  for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith(TEMP_PREFIX))) {
    const dir = join(tmpdir(), name);
    try {
      const pid = Number(readFileSync(join(dir, 'demo.pid'), 'utf8'));
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(dir, { recursive: true, force: true });
      }
    } catch {
      // not ours, or not readable: leave it
    }
  }
}

/** The abort reason for a stop the user asked for (as opposed to a failure). */
class Interrupted extends Error {}

/** One run of the demo: what it started, so that cleanup stops exactly that. */
class DemoRun {
  private readonly tmp = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  private readonly children: WeftChild[] = [];
  private readonly apps: DemoApp[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: FIXED_CONCURRENCY });
  private readonly abort = new AbortController();
  private cleaning = false;
  private resolveForced: (code: number) => void = () => undefined;
  /** Resolves (to 1) when a second signal forced an immediate stop. */
  readonly forced = new Promise<number>((r) => (this.resolveForced = r));

  constructor(private readonly layout: DemoLayout, private readonly out: (line: string) => void, private readonly tracingEndpoint = DEMO_TRACING_ENDPOINT) {}

  /** The first stop request (Ctrl-C, SIGTERM) ends the run gracefully; see `forceStop`. */
  interrupt(reason: string): void {
    if (!this.abort.signal.aborted) this.abort.abort(new Interrupted(reason));
  }

  /** Starts everything; resolves when every sidecar is ready. Rejects on error or interrupt. */
  async start(): Promise<void> {
    const { layout, tmp } = this;
    const signal = this.abort.signal;
    const manifests = join(tmp, 'manifests');
    const logs = join(tmp, 'logs');
    prepareManifests(MANIFESTS_DIR, manifests, layout);
    writeFileSync(join(tmp, 'demo.pid'), String(process.pid));
    mkdirSync(logs);
    this.out(`weft demo: namespace ${DEMO_NAMESPACE} on ${layout.base}.x; temp dir ${tmp} (logs in ${logs})`);

    for (const pod of layout.pods) {
      this.apps.push(
        pod.app === 'backend'
          ? await startBackend({ ip: pod.ip, port: APP_PORT, version: pod.version ?? 'v1', pod: pod.name })
          : await startFrontend({
              ip: pod.ip,
              port: APP_PORT,
              pod: pod.name,
              sidecar: { ip: pod.ip, port: SIDECAR_PORTS.outbound },
              upstreamHost: layout.backendHost,
              timeoutMs: REQUEST_TIMEOUT_MS,
            }),
      );
    }

    const t0 = Date.now();
    // Identity: the CA's root, its trust state and the pods' tokens live in the temp dir too.
    const data = join(tmp, 'data');
    const cp = this.spawn('control plane', ['control-plane', '--manifests', manifests, '--xds-address', layout.xdsAddress,
      '--debug-address', layout.debugAddress, '--data-dir', data, '--ca-address', layout.caAddress,
      // Traces go to `weft trace` when one runs (nothing else changes when none does: spans are dropped).
      '--tracing-endpoint', this.tracingEndpoint, '--tracing-sampling', String(DEMO_TRACING_PERCENT)], {}, join(logs, 'control-plane.log'));
    await waitForPort(cp, layout.controlPlaneIp, CONTROL_PLANE_PORTS.xds, CONTROL_PLANE_START_MS, signal);
    this.out(`weft demo: control plane serving xDS on ${layout.xdsAddress} (${elapsed(t0)})`);

    const sidecars = layout.pods.map((pod) => ({
      pod,
      child: this.spawn(`sidecar of ${pod.name}`, ['sidecar', '--drain-timeout', '2000'], {
        WEFT_XDS_ADDRESS: layout.xdsAddress,
        POD_NAME: pod.name,
        POD_NAMESPACE: DEMO_NAMESPACE,
        POD_IP: pod.ip,
        SERVICE_ACCOUNT: pod.serviceAccount,
        WEFT_TOKEN_PATH: join(data, 'tokens', DEMO_NAMESPACE, pod.serviceAccount, 'token'),
        WEFT_CA_ROOT_CERT: join(data, 'ca', 'root-cert.pem'),
        WEFT_CA_ADDRESS: layout.caAddress,
      }, join(logs, `${pod.name}.sidecar.log`)),
    }));
    await Promise.all(sidecars.map(({ pod, child }) =>
      waitForReady(child, `http://${pod.ip}:${SIDECAR_PORTS.health}/healthz/ready`, SIDECAR_READY_MS, signal)));
    this.out(`weft demo: ${sidecars.length} sidecars ready (${elapsed(t0)})`);
  }

  /** Sends `n` requests; resolves to the exit status (0 when none failed). */
  async fixed(n: number): Promise<number> {
    const stats = new LoadStats();
    this.out(`weft demo: sending ${n} requests (${FIXED_CONCURRENCY} at a time) frontend → backend`);
    await runFixed(this.agent, this.target(), n, FIXED_CONCURRENCY, stats, this.abort.signal);
    this.abort.signal.throwIfAborted();
    this.out(formatSummary(stats).trimEnd());
    return stats.failed === 0 ? 0 : 1;
  }

  /** Runs until interrupted, refreshing one summary line every second; resolves to 0. */
  async live(): Promise<number> {
    this.printGuide();
    const stats = new LoadStats();
    const tty = process.stdout.isTTY === true;
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
      if (tty) process.stdout.write(`\r\x1b[2K${formatLiveLine(stats)}`);
      else if (ticks % 5 === 0) this.out(formatLiveLine(stats)); // a log, not a screen: less often
    }, 1000);
    try {
      await runPaced(this.agent, this.target(), LIVE_RATE_PER_SECOND, LIVE_CONCURRENCY, stats, this.abort.signal);
    } finally {
      clearInterval(timer);
      if (tty) process.stdout.write('\n');
    }
    this.out(formatSummary(stats).trimEnd());
    if (!(this.abort.signal.reason instanceof Interrupted)) throw this.abort.signal.reason;
    return 0;
  }

  /** Stops children (sidecars first), closes the apps, removes the temp dir. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.cleaning) return;
    this.cleaning = true;
    this.agent.destroy();
    const sidecars = this.children.filter((c) => c.name !== 'control plane');
    await Promise.all(sidecars.map((c) => c.stop(STOP_GRACE_MS)));
    await Promise.all(this.children.map((c) => c.stop(STOP_GRACE_MS)));
    await Promise.all(this.apps.map((a) => withTimeout(a.close(), 1000).catch(() => a.destroy())));
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** A second stop request: no grace for anyone. Synchronous. */
  forceStop(): void {
    this.out('\nweft demo: stopping now');
    this.cleaning = true;
    for (const c of this.children) c.kill();
    for (const a of this.apps) a.destroy();
    this.agent.destroy();
    rmSync(this.tmp, { recursive: true, force: true });
    this.resolveForced(1);
  }

  private spawn(name: string, args: string[], env: Record<string, string>, logPath: string): WeftChild {
    const child = spawnWeft(name, args, env, logPath);
    this.children.push(child);
    // A child that dies while the demo runs ends the demo, with its log's tail in the message.
    void child.exited.then((e) => {
      if (!this.cleaning && !this.abort.signal.aborted) {
        this.abort.abort(childError(child, `exited unexpectedly (${e.signal ?? `code ${e.code}`})`));
      }
    });
    return child;
  }

  private target(): LoadTarget {
    const f = this.layout.frontend;
    return { ip: f.ip, port: SIDECAR_PORTS.inbound, host: this.layout.frontendHost, targetPort: APP_PORT, timeoutMs: REQUEST_TIMEOUT_MS };
  }

  private printGuide(): void {
    const { layout } = this;
    const rows = layout.pods.map((p) =>
      `  ${p.name.padEnd(11)} ${p.ip.padEnd(14)} app :${APP_PORT}  sidecar admin http://${p.ip}:${SIDECAR_PORTS.admin}/config_dump`);
    this.out([
      '',
      `Traffic: load → frontend's sidecar (${layout.frontend.ip}:${SIDECAR_PORTS.inbound}) → frontend app → its sidecar ` +
        `(${layout.frontend.ip}:${SIDECAR_PORTS.outbound}, Host ${layout.backendHost}) → backend v1 or v2`,
      `  control plane ${layout.xdsAddress} (xDS), ${layout.debugAddress} (debug)`,
      ...rows,
      '',
      `Traces: run \`weft trace\` in another terminal: it receives the sidecars' spans on ${this.tracingEndpoint}`,
      `  (${DEMO_TRACING_PERCENT}% of requests are sampled) and prints each trace as a waterfall: load → frontend → backend.`,
      `Metrics: \`weft stat -n demo --control-plane ${layout.debugAddress}\` shows success rate, requests/s and latency per`,
      `  workload; each sidecar's Prometheus metrics are at http://<pod ip>:${SIDECAR_PORTS.metrics}/metrics.`,
      `Health: \`weft check --control-plane ${layout.debugAddress}\` checks the proxies, policies and certificates.`,
      '',
      'To change the split, edit the weights in',
      `  ${join(this.tmp, 'manifests', POLICY_FILE)}`,
      'The control plane watches that file and the sidecars follow within a second. Ctrl-C stops everything.',
      '',
    ].join('\n'));
  }
}

function elapsed(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/** Where the demo's sidecars send spans: `weft trace`'s default unless --tracing-endpoint says otherwise. */
function tracingEndpointFlag(args: ParsedArgs): string {
  const v = stringFlag(args, 'tracing-endpoint');
  if (v === undefined) return DEMO_TRACING_ENDPOINT;
  if (!/^https?:\/\/[^/\s]+/.test(v)) throw new UsageError(`--tracing-endpoint must be an http:// URL such as ${DEMO_TRACING_ENDPOINT}, got "${v}"`);
  return v;
}

async function run(args: ParsedArgs): Promise<number> {
  const requests = stringFlag(args, 'requests');
  const n = requests === undefined ? undefined : parseInteger(requests, '--requests', 1, 100_000_000);
  const layout = demoLayout(parseBaseIp(stringFlag(args, 'base-ip') ?? DEFAULT_BASE_IP));
  sweepStaleTempDirs();
  const demo = new DemoRun(layout, (line) => process.stdout.write(line + '\n'), tracingEndpointFlag(args));
  void stopRequests({ exitWithParent: false, onRepeat: () => demo.forceStop() }).then((reason) => demo.interrupt(reason));

  const body = (async (): Promise<number> => {
    try {
      await demo.start();
      return n === undefined ? await demo.live() : await demo.fixed(n);
    } catch (err) {
      // A stop the user asked for is not an error; an incomplete --requests run still fails.
      if (err instanceof Interrupted) return n === undefined ? 0 : 1;
      throw err;
    } finally {
      await demo.cleanup();
    }
  })();
  return Promise.race([body, demo.forced]);
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the local demo mesh (npm start)',
  usage: 'weft demo [--requests N] [--base-ip 127.0.10] [--tracing-endpoint URL]',
  description: [
    'Runs a control plane and three pods on loopback addresses — frontend, backend-v1 and\n' +
      'backend-v2, each app with its own sidecar — and sends traffic frontend → backend under a\n' +
      'TrafficPolicy that splits it 90/10 between v1 and v2. Needs no cluster and no root (Linux:\n' +
      'every 127.x.y.z address is local).',
    'Without --requests it runs until Ctrl-C, showing a live line of requests, errors, the v1/v2\n' +
      'shares and req/s, and prints which file to edit to change the split. With --requests N it\n' +
      'sends N requests, prints the v1 and v2 counts and shares, and exits 0 when none failed.',
    `Traces: the sidecars sample ${DEMO_TRACING_PERCENT}% of requests and send the spans to --tracing-endpoint\n` +
      `(default ${DEMO_TRACING_ENDPOINT}, where \`weft trace\` listens): run \`weft trace\` beside the demo to see them.`,
    'Ctrl-C or SIGTERM stops every process it started and removes its temp dir.',
  ],
  flags: [
    { name: 'requests', type: 'string', placeholder: 'N', help: 'send N requests, print a summary and exit' },
    { name: 'base-ip', type: 'string', placeholder: 'A.B.C', help: `first three octets of the pod addresses (default ${DEFAULT_BASE_IP})` },
    { name: 'tracing-endpoint', type: 'string', placeholder: 'URL', help: `where the sidecars send spans (default ${DEMO_TRACING_ENDPOINT}, \`weft trace\`)` },
  ],
  available: true,
  run,
};
