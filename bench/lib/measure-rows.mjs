// The measured sequence of one row, shared by the plaintext and the mTLS benchmark so both rows
// mean the same: 2 s of closed-loop warm-up (JIT, pools), a pause, the open-loop latency run (the
// proxy warm but not saturated), then the closed-loop throughput run. RSS of `pid` is sampled
// across the row when given. Measures only what it is told to.
//
// gRPC: the open-loop client checks grpc-status call by call. h2load sees only the HTTP status,
// and a proxy answers its own gRPC errors (no route, no endpoint, overflow, deadline) with HTTP 200
// and a non-zero grpc-status, without the call reaching the upstream. So the measured h2load run
// counts every request (no --warm-up-time; the 2 s run before it warms up), and each of its
// successes must be matched by a call the upstream answered, always with grpc-status 0:
// succeeded <= answered, or the difference is calls that failed inside a proxy.
import { grpcAnswered } from './grpc-count.mjs';
import { runH2load } from './load-h2load.mjs';
import { runOpenLoop } from './load-open-loop.mjs';
import { runWrk } from './load-wrk.mjs';
import { httpStatus, sleep } from './procs.mjs';
import { sampleRss } from './rss.mjs';

/** One HTTP/1.1 row `{key, name, url, host?}`; returns `{ row, rss }` (rss: peak MB, NaN unsampled). */
export async function measureHttpRow(v, { opts, pid, log }) {
  const status = await httpStatus(v.url, v.host ? { host: v.host } : {});
  if (status !== 200) throw new Error(`${v.name}: ${v.url} answers ${status}, not 200`);
  const sampler = pid ? sampleRss(pid) : undefined;
  log(`${v.name}: warm-up, ${opts.rate} req/s open loop for ${opts.seconds} s, then wrk -t1 -c${opts.connections} -d${opts.seconds}s`);
  await runWrk(v.url, { host: v.host, connections: opts.connections, seconds: 2 });
  await sleep(1000);
  const lat = await runOpenLoop({ mode: 'h1', url: v.url, host: v.host, rate: opts.rate, seconds: opts.seconds, warmupSeconds: 1 });
  const wrk = await runWrk(v.url, { host: v.host, connections: opts.connections, seconds: opts.seconds });
  const rss = sampler ? sampler.stop() : NaN;
  if (lat.errors) log(`${v.name}: ${lat.errors} open-loop errors, first: ${lat.firstError}`);
  return { row: { name: v.name, rps: wrk.rps, errors: wrk.errors + lat.errors, lat, wrkLatency: wrk.latencyMs }, rss };
}

/** One gRPC unary row `{key, name, url, authority?}` against `upstream` (its answered-calls counter). */
export async function measureGrpcRow(v, { opts, pid, log, dir, upstream, path }) {
  const sampler = pid ? sampleRss(pid) : undefined;
  log(`gRPC ${v.name}: warm-up, ${opts.rate} req/s open loop for ${opts.seconds} s, then h2load -c4 -m8 for ${opts.seconds} s`);
  await runH2load(v.url + path, { seconds: 2, warmupSeconds: 1, authority: v.authority, dir });
  await sleep(1000);
  const lat = await runOpenLoop({ mode: 'grpc', url: v.url, authority: v.authority, path, rate: opts.rate, seconds: opts.seconds, warmupSeconds: 1 });
  const before = await grpcAnswered(upstream);
  const h2 = await runH2load(v.url + path, { seconds: opts.seconds, warmupSeconds: 0, authority: v.authority, dir });
  const answered = (await grpcAnswered(upstream)) - before;
  const rss = sampler ? sampler.stop() : NaN;
  const notAnswered = Math.max(0, h2.succeeded - answered);
  log(`gRPC ${v.name}: h2load ${h2.succeeded} succeeded of ${h2.started} started, upstream answered ${answered}${notAnswered ? ` (${notAnswered} failed inside a proxy)` : ' (grpc-status 0 for each)'}; open loop ${lat.ok}/${lat.sent} grpc-status 0`);
  if (lat.errors) log(`gRPC ${v.name}: ${lat.errors} open-loop errors, first: ${lat.firstError}`);
  const row = { name: v.name, rps: h2.rps, errors: h2.errors + lat.errors + notAnswered, lat, h2load: { started: h2.started, done: h2.done, succeeded: h2.succeeded, answered } };
  return { row, rss };
}

/**
 * Every row of one table in order (`kind` 'http' or 'grpc'); the RSS of `weftPid` is sampled
 * across the `weft` row. Returns `{ rows: {key: row}, rss }`.
 */
export async function measureRows(kind, variants, ctx) {
  const rows = {};
  let rss = NaN;
  for (const v of variants) {
    const pid = v.key === 'weft' ? ctx.weftPid : undefined;
    const r = kind === 'http' ? await measureHttpRow(v, { ...ctx, pid }) : await measureGrpcRow(v, { ...ctx, pid });
    rows[v.key] = r.row;
    if (pid) rss = r.rss;
  }
  return { rows, rss };
}

/**
 * The three rows of a table: (a) the upstream directly, (b) through the Weft pair's client-side
 * sidecar, (c) through the first haproxy (HTTP on 8000, gRPC on 9000). `label` is appended to (b)
 * and (c)'s names (", mTLS").
 */
export function pairVariants(kind, { ip, appPort, grpcPort, host, authority, label = '' }) {
  return kind === 'http'
    ? [
        { key: 'direct', name: '(a) direct', url: `http://${ip.server}:${appPort}/` },
        { key: 'weft', name: `(b) weft pair${label}`, url: `http://${ip.client}:15001/`, host },
        { key: 'haproxy', name: `(c) haproxy pair${label}`, url: `http://${ip.ha1}:8000/` },
      ]
    : [
        { key: 'direct', name: '(a) direct', url: `http://${ip.server}:${grpcPort}` },
        { key: 'weft', name: `(b) weft pair${label}`, url: `http://${ip.client}:15001`, authority },
        { key: 'haproxy', name: `(c) haproxy pair${label}`, url: `http://${ip.ha1}:9000` },
      ];
}
