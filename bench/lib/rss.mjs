// Resident set size of a process, from /proc/<pid>/status VmRSS (what the kernel charges it
// for: heap, code, buffers), and a sampler that keeps the peak while load runs.
import { readFileSync } from 'node:fs';

/** VmRSS in MB, or NaN once the process is gone. */
export function rssMb(pid) {
  try {
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

/** Samples every `everyMs` until stop() is called; stop() returns the peak in MB. */
export function sampleRss(pid, everyMs = 200) {
  let peak = rssMb(pid);
  const t = setInterval(() => {
    const v = rssMb(pid);
    if (v > peak || Number.isNaN(peak)) peak = v;
  }, everyMs);
  return {
    stop() {
      clearInterval(t);
      const v = rssMb(pid);
      return Math.max(peak, Number.isNaN(v) ? 0 : v);
    },
  };
}

/**
 * Idle RSS of processes that just became ready, read twice: `startupMs` after ready (the start-up
 * peak: V8 keeps what start-up grew until its memory reducer runs) and `settleMs` after ready, once
 * the memory reducer (which starts about 8 s after the heap stops growing) has shrunk the heap to
 * what an idle sidecar keeps for as long as it stays idle. The settled reading is what the
 * targets are checked against; both are printed. Returns MB per pid.
 */
export async function idleRss(pids, { startupMs = 2000, settleMs = 20000 } = {}) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(startupMs);
  const startup = pids.map((p) => rssMb(p));
  await sleep(Math.max(0, settleMs - startupMs));
  const settled = pids.map((p) => rssMb(p));
  return { startup, settled };
}
