// Idle memory of the Weft sidecar pair, measured as `npm run bench` does (VmRSS 20 s after both
// sidecars are ready, once V8's memory reducer has run, and 2 s after as `startupRss`; no traffic
// beyond the readiness probes), with a breakdown from
// /proc/PID/smaps_rollup (anonymous vs file-backed pages). Runnable alone, for the before/after
// table in docs/performance.md; it needs no nginx or haproxy:
//   node bench/lib/idle-rss.mjs [--runs N] [--identity] [--keep] [-- NODE_FLAG...]
// `--identity`: the sidecars get certificates from the control plane's CA (as with mTLS).
// Node flags after `--` go to both sidecars (as WEFT_BENCH_NODE_FLAGS does in the bench); without
// `--` the sidecars run with the CLI's default flags, as in the bench. `--keep` keeps the logs.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installCleanup, stopAll } from './procs.mjs';
import { startWeftPair } from './proxy-weft.mjs';
import { idleRss, rssMb } from './rss.mjs';

/** Rss, Anonymous and file-backed resident MB from smaps_rollup (NaN fields when unreadable). */
export function rssBreakdown(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1]) / 1024;
    return { rss: kb('Rss'), anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
  } catch {
    return { rss: NaN, anon: NaN, file: NaN };
  }
}

const IP = { cp: '127.30.0.1', client: '127.30.0.11', server: '127.30.0.21' };

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const nodeFlags = dash >= 0 ? argv.slice(dash + 1) : undefined;
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const keep = own.includes('--keep');
  const identity = own.includes('--identity');
  const rest = own.filter((a) => a !== '--keep' && a !== '--identity');
  const runs = rest[0] === '--runs' ? Number(rest[1]) : 1;
  if (!Number.isInteger(runs) || runs < 1 || (rest.length && (rest[0] !== '--runs' || rest.length !== 2))) {
    console.error('usage: node bench/lib/idle-rss.mjs [--runs N] [--identity] [--keep] [-- NODE_FLAG...]');
    process.exit(2);
  }
  installCleanup(runs * 60_000);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'weft-idle-rss-'));
    const weft = await startWeftPair(dir, { root, cpIp: IP.cp, clientIp: IP.client, serverIp: IP.server, appPort: 8080, grpcPort: 9090, nodeFlags, checkRoute: false, identity });
    const pids = [weft.server.child.pid, weft.client.child.pid];
    const { startup } = await idleRss(pids);
    const out = {};
    ['server', 'client'].forEach((side, i) => {
      const pid = pids[i];
      out[side] = { startupRss: +startup[i].toFixed(1), vmRss: +rssMb(pid).toFixed(1), ...Object.fromEntries(Object.entries(rssBreakdown(pid)).map(([k, v]) => [k, +v.toFixed(1)])) };
    });
    console.log(JSON.stringify({ nodeFlags: weft.nodeFlags, identity, ...out }));
    await stopAll();
    if (keep) console.log(`logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
