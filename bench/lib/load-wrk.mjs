// Closed-loop HTTP/1.1 keep-alive throughput: runs Debian `wrk` (one thread, N connections,
// each sending its next request as soon as the previous answer arrives) and returns req/s,
// wrk's own latency percentiles under that load, and any errors or non-2xx answers.
import { join } from 'node:path';
import { start } from './procs.mjs';

function parseDuration(v, unit) {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
}

export async function runWrk(url, { host, threads = 1, connections = 32, seconds = 10, dir }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', url];
  if (host) args.push('-H', `Host: ${host}`);
  const p = start('wrk', '/usr/bin/wrk', args, { capture: true, logPath: dir ? join(dir, 'wrk.log') : undefined });
  const { code } = await p.done;
  if (code !== 0) throw new Error(`wrk exited ${code}: ${p.err || p.out}`);
  const out = p.out;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const lat = {};
  for (const m of out.matchAll(/^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$/gm)) lat[`p${m[1]}`] = parseDuration(m[2], m[3]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk's output:\n${out}`);
  return { rps, latencyMs: lat, errors, raw: out };
}
