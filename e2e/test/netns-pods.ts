/**
 * Pods as Linux network namespaces on a bridge (for capture-mode tests): a switch namespace with
 * `br0` holding the control plane's address, and one namespace per pod with `eth0` on the bridge,
 * `weft capture-init` rules applied. Needs root, `ip`, iptables and setpriv; `netnsSkipReason()`
 * says why not when they are missing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');

export function netnsSkipReason(): string | false {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root';
  try {
    for (const tool of [['ip', '-V'], ['iptables-restore', '--version'], ['setpriv', '--version']]) execFileSync(tool[0]!, tool.slice(1), { stdio: 'ignore' });
  } catch {
    return 'ip, iptables or setpriv is missing';
  }
  return false;
}

export const sh = (...a: string[]): string => execFileSync(a[0]!, a.slice(1), { encoding: 'utf8' });
export const inNs = (ns: string, ...a: string[]): string => sh('ip', 'netns', 'exec', ns, ...a);

export interface NetnsPod {
  readonly ns: string;
  readonly ip: string;
  readonly veth: string;
}

/** Node processes started in namespaces; `kill()` ends them all. */
export class NetnsProcesses {
  private readonly children: ChildProcess[] = [];

  /** `node args` in `ns` (as `uid` when given); logs to the test's stderr with WEFT_TEST_LOG. */
  start(ns: string, args: string[], env: Record<string, string>, uid?: number): ChildProcess {
    const prefix = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
    const child = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, ...args], {
      env: { ...process.env, WEFT_LOG_LEVEL: process.env.WEFT_TEST_LOG ? 'debug' : 'warn', ...env },
      stdio: ['ignore', 'ignore', process.env.WEFT_TEST_LOG ? 'inherit' : 'ignore'],
    });
    this.children.push(child);
    return child;
  }

  kill(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}

/** Creates the switch `sw` (bridge address `cpIp`/24) and each pod's namespace with capture rules. */
export function createNetnsPods(sw: string, cpIp: string, pods: readonly NetnsPod[]): void {
  sh('ip', 'netns', 'add', sw);
  inNs(sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
  inNs(sw, 'ip', 'addr', 'add', `${cpIp}/24`, 'dev', 'br0');
  inNs(sw, 'ip', 'link', 'set', 'br0', 'up');
  inNs(sw, 'ip', 'link', 'set', 'lo', 'up');
  for (const p of pods) {
    sh('ip', 'netns', 'add', p.ns);
    sh('ip', 'link', 'add', 'eth0', 'netns', p.ns, 'type', 'veth', 'peer', 'name', p.veth, 'netns', sw);
    inNs(sw, 'ip', 'link', 'set', p.veth, 'master', 'br0');
    inNs(sw, 'ip', 'link', 'set', p.veth, 'up');
    inNs(p.ns, 'ip', 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0');
    inNs(p.ns, 'ip', 'link', 'set', 'eth0', 'up');
    inNs(p.ns, 'ip', 'link', 'set', 'lo', 'up');
    inNs(p.ns, 'ip', 'route', 'add', 'default', 'via', cpIp);
    inNs(p.ns, process.execPath, WEFT, 'capture-init');
  }
}

/** Deletes the namespaces (those that exist). */
export function deleteNetns(names: readonly string[]): void {
  for (const ns of names) {
    try { sh('ip', 'netns', 'del', ns); } catch { /* not created */ }
  }
}

/** Resolves once each pod's sidecar answers `/healthz/ready` with 200 (its health port, in its namespace). */
export async function sidecarsReady(pods: readonly NetnsPod[], eventually: (what: string, check: () => boolean, ms: number) => Promise<unknown>): Promise<void> {
  for (const p of pods) {
    await eventually(`the sidecar in ${p.ns} to be ready`, () => {
      try {
        return inNs(p.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${p.ip}:15021/healthz/ready`) === '200';
      } catch {
        return false;
      }
    }, 15_000);
  }
}

/** Kills the processes, deletes the namespaces and the manifests directory. */
export function teardown(procs: NetnsProcesses, namespaces: readonly string[], dir: string | undefined): void {
  procs.kill();
  deleteNetns(namespaces);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
