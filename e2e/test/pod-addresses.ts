/**
 * Pod addresses for tests against the real API server, which refuses loopback addresses in
 * EndpointSlices: each pod's address (/32) added to this network namespace's `lo` (the kernel here
 * has no dummy interfaces), so apps and sidecars bind them and the EndpointSlice controller accepts
 * them. Needs root (`ip addr add`); without it the reason is returned for `t.skip`.
 */
import { execFileSync } from 'node:child_process';

export interface PodAddresses {
  /** Removes the addresses. Idempotent. */
  remove(): void;
}

export function addPodAddresses(ips: readonly string[]): PodAddresses | string {
  if (process.platform !== 'linux') return 'pod addresses on lo need Linux';
  if (process.getuid?.() !== 0) return 'pod addresses on lo need root (the API server refuses loopback endpoints)';
  const ip = (...a: string[]): void => void execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const del = (a: string): void => {
    try {
      ip('addr', 'del', `${a}/32`, 'dev', 'lo');
    } catch {
      // not there
    }
  };
  for (const a of ips) {
    del(a); // a run that died before removing them
    ip('addr', 'add', `${a}/32`, 'dev', 'lo');
  }
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    for (const a of ips) del(a);
  };
  process.once('exit', remove);
  return { remove };
}
