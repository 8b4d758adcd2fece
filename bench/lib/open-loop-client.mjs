// Open-loop latency at a fixed rate, run as its own process (so its event loop is not shared
// with the bench's). Requests are scheduled on a fixed clock (one every 1/rate s) regardless of
// how earlier ones fare, and each latency is measured from its *scheduled* time to the end of
// its response, so a stall shows up in the percentiles (no coordinated omission).
// Modes: `h1` (HTTP/1.1 GET through a keep-alive agent) and `grpc` (unary POST over one h2c
// session, as grpc-js frames it, with `authority` as :authority when given; a call counts as ok
// only with grpc-status 0). Prints one JSON line: {sent, ok, errors, p50, p90, p99, p999,
// max} with latencies in ms, counting only requests scheduled after the warm-up.
import http from 'node:http';
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';

const opt = JSON.parse(process.argv[2]);
const { mode, url, host, authority, rate, seconds, warmupSeconds } = opt;
const interval = 1000 / rate;
const total = Math.round((seconds + warmupSeconds) * rate);
const warmupCount = Math.round(warmupSeconds * rate);
const lat = new Float64Array(total);
let done = 0;
let errors = 0;
let firstError = '';

function finish(i, scheduled, ok, why) {
  lat[i] = ok ? performance.now() - scheduled : NaN;
  if (!ok) {
    if (i >= warmupCount) errors++;
    firstError ||= why;
  }
  if (++done === total) report();
}

let send;
if (mode === 'h1') {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512, scheduling: 'lifo' });
  const headers = host ? { host } : {};
  send = (i, scheduled) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, agent, headers }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => finish(i, scheduled, res.statusCode === 200, `status ${res.statusCode}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => finish(i, scheduled, false, e.message));
    req.end();
  };
} else {
  const session = http2.connect(url, { peerMaxConcurrentStreams: 1000 });
  session.on('error', (e) => (firstError ||= e.message));
  // An empty protobuf message in gRPC's 5-byte length-prefixed framing.
  const frame = Buffer.from([0, 0, 0, 0, 0]);
  const path = opt.path;
  send = (i, scheduled) => {
    const s = session.request({ ':method': 'POST', ':path': path, ...(authority ? { ':authority': authority } : {}), 'content-type': 'application/grpc', te: 'trailers' });
    let status = '';
    s.on('response', (h) => (status = h['grpc-status'] ?? status));
    s.on('trailers', (t) => (status = t['grpc-status'] ?? status));
    s.on('data', () => undefined);
    s.on('error', (e) => finish(i, scheduled, false, e.message));
    s.on('end', () => finish(i, scheduled, status === '0', `grpc-status ${status}`));
    s.setTimeout(10_000, () => s.close(http2.constants.NGHTTP2_CANCEL));
    s.end(frame);
  };
}

function report() {
  const m = Array.from(lat.subarray(warmupCount)).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const q = (p) => (m.length ? m[Math.min(m.length - 1, Math.ceil(p * m.length) - 1)] : NaN);
  process.stdout.write(
    JSON.stringify({ sent: total - warmupCount, ok: m.length, errors, firstError, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: m.at(-1) }) + '\n',
  );
  process.exit(0);
}

// The clock: every tick sends all requests whose scheduled time has come, then sleeps until the
// next one. Timer lateness is charged to the requests it delays, as it should be.
const t0 = performance.now() + 20;
let next = 0;
function tick() {
  const now = performance.now();
  while (next < total && t0 + next * interval <= now) {
    send(next, t0 + next * interval);
    next++;
  }
  if (next < total) setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
}
setTimeout(tick, 20);
setTimeout(() => {
  console.error(`open-loop: ${total - done} requests unanswered after the deadline`);
  errors += total - done;
  report();
}, (seconds + warmupSeconds + 15) * 1000).unref();
process.stdin.on('end', () => process.exit(1)); // the bench went away
process.stdin.resume();
