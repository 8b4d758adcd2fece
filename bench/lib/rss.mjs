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
