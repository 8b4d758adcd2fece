// Throwaway: the floor of an HTTP/2 proxy pair on Node (docs/h2-lean.md, "The floor").
// A pair of bare relays (no Weft logic: headers, data and trailers passed through) in front of the
// bench's gRPC upstream, measured with h2load as bench/lib/load-h2load.mjs does (-c4 -m8, empty
// gRPC message), beside the HAProxy pair of bench/sidecar-vs-haproxy.mjs. Variants:
//   node  — Node's `http2` core API (server stream -> one client session's stream, piped)
//   lean  — the same relay on the lean layer (sidecar/dist/test/h2wire-relay.js; needs `npm run build`)
//   haproxy — bench/lib/proxy-haproxy.mjs's gRPC pair
//   pipe  — bytes piped socket to socket, no HTTP/2 at all: the floor of any relay in Node
// CPU µs/call = utime+stime of both relay processes over the run / calls. Run under the lock:
//   flock /tmp/weft-bench.lock node bench/tools/h2-floor.mjs [--seconds 10] [--only node,lean,haproxy,pipe] [--profile DIR]
// Internal: `--relay <variant> <listen host:port> <next host:port>` runs one relay process.
import http2 from 'node:http2';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

if (process.argv[2] === '--relay') {
  const [variant, listen, next] = process.argv.slice(3);
  const [lh, lp] = listen.split(':');
  const [nh, np] = next.split(':');
  if (variant === 'node') nodeRelay(lh, Number(lp), nh, Number(np));
  else if (variant === 'pipe') {
    // The floor of any relay in Node: bytes piped socket to socket (one upstream connection per
    // downstream one, no HTTP/2 parsing at all).
    const net = await import('node:net');
    net.createServer((down) => {
      const up = net.connect(Number(np), nh);
      down.setNoDelay(true);
      up.setNoDelay(true);
      down.pipe(up).pipe(down);
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
    }).listen(Number(lp), lh, () => console.log('listening'));
  }
  else if (variant === 'lean') {
    const { startLeanRelay } = await import(join(ROOT, 'sidecar/dist/test/h2wire-relay.js'));
    await startLeanRelay({ listenHost: lh, listenPort: Number(lp), nextHost: nh, nextPort: Number(np) });
    console.log('listening');
  } else throw new Error(`unknown relay ${variant}`);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else {
  await main();
}

function nodeRelay(lh, lp, nh, np) {
  let session;
  const upstream = () => {
    if (session && !session.closed && !session.destroyed) return session;
    session = http2.connect(`http://${nh}:${np}`);
    session.on('error', () => undefined);
    return session;
  };
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const out = {};
    for (const k of Object.keys(headers)) out[k] = headers[k];
    const req = upstream().request(out, { endStream: stream.readableEnded });
    req.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    let trailers;
    req.on('response', (h, flags) => {
      if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) return stream.respond(h, { endStream: true });
      stream.respond(h, { waitForTrailers: true });
      req.pipe(stream);
    });
    req.on('trailers', (t) => (trailers = t));
    stream.on('wantTrailers', () => (trailers ? stream.sendTrailers(trailers) : stream.close()));
    stream.pipe(req);
  });
  server.listen(lp, lh, () => console.log('listening'));
}

async function main() {
  const { installCleanup, start, stopAll, waitFor, tcpOpen } = await import(join(ROOT, 'bench/lib/procs.mjs'));
  const { startHaproxyPair } = await import(join(ROOT, 'bench/lib/proxy-haproxy.mjs'));
  const { runH2load } = await import(join(ROOT, 'bench/lib/load-h2load.mjs'));
  const { grpcAnswered } = await import(join(ROOT, 'bench/lib/grpc-count.mjs'));
  const args = process.argv.slice(2);
  const flag = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
  };
  const seconds = Number(flag('--seconds', '10'));
  const only = flag('--only', 'node,lean,haproxy').split(',');
  const profileDir = flag('--profile', undefined); // relays under --cpu-prof, top self time printed
  const dir = mkdtempSync(join(tmpdir(), 'h2-floor-'));
  installCleanup((only.length * (seconds + 10) + 60) * 1000);
  const IP = { server: '127.30.0.21', a: '127.30.0.11', b: '127.30.0.21', ha1: '127.30.1.11', ha2: '127.30.1.21' };
  const grpc = start('grpc server', process.execPath, [join(ROOT, 'bench/lib/grpc-server.mjs'), `${IP.server}:9090`], {
    logPath: join(dir, 'grpc-server.log'),
    stdinPipe: true,
  });
  await waitFor(grpc, async () => /listening/.test(readFileSync(join(dir, 'grpc-server.log'), 'utf8')), 'listening');
  const ticks = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  };
  const rows = [];
  const measure = async (name, url, pids) => {
    await runH2load(url, { clients: 4, streams: 8, seconds: 2, warmupSeconds: 0, dir }); // warm (JIT, connections)
    const upstream = `http://${IP.server}:9090`;
    const a0 = await grpcAnswered(upstream);
    const t0 = pids.map(ticks);
    const r = await runH2load(url, { clients: 4, streams: 8, seconds, warmupSeconds: 0, dir });
    const cpuTicks = pids.map(ticks).reduce((s, t, i) => s + t - t0[i], 0);
    // Every call h2load counted as a success reached the upstream (h2load sees the HTTP status only).
    const answered = (await grpcAnswered(upstream)) - a0;
    const row = { name, rps: r.rps, succeeded: r.succeeded, answered, errors: r.errors, cpuUsPerCall: (cpuTicks * 10_000) / r.succeeded };
    rows.push(row);
    console.log(JSON.stringify(row));
  };
  for (const v of only) {
    if (v === 'haproxy') {
      const procs = await startHaproxyPair(dir, [
        { listen: `${IP.ha1}:8000`, next: `${IP.ha2}:8000`, grpc: { listen: `${IP.ha1}:9000`, next: `${IP.ha2}:9000` } },
        { listen: `${IP.ha2}:8000`, next: `${IP.server}:8080`, grpc: { listen: `${IP.ha2}:9000`, next: `${IP.server}:9090` } },
      ]);
      await measure('haproxy pair', `http://${IP.ha1}:9000/bench.Bench/Unary`, procs.map((p) => p.child.pid));
      for (const p of procs) p.child.kill('SIGKILL');
      continue;
    }
    const pair = [];
    for (const [listen, next] of [
      [`${IP.b}:15006`, `${IP.server}:9090`],
      [`${IP.a}:15001`, `${IP.b}:15006`],
    ]) {
      const prof = profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, `${v}-${listen.replace(':', '-')}`)] : [];
      const p = start(`relay ${v}`, process.execPath, [...prof, fileURLToPath(import.meta.url), '--relay', v, listen, next], { logPath: join(dir, `relay-${v}.log`), stdinPipe: true });
      const [h, port] = listen.split(':');
      await waitFor(p, () => tcpOpen(h, Number(port)), `listening on ${listen}`);
      pair.push(p);
    }
    await measure(`${v} pair`, `http://${IP.a}:15001/bench.Bench/Unary`, pair.map((p) => p.child.pid));
    // Closing stdin makes a relay exit on its own (and write its profile).
    for (const p of pair) p.child.stdin.end();
    await Promise.race([Promise.all(pair.map((p) => p.done)), new Promise((r) => setTimeout(r, 5000))]);
    for (const p of pair) if (!p.exited) p.child.kill('SIGKILL');
    if (profileDir) {
      const { printTop } = await import(join(ROOT, 'bench/lib/cpu-profile-top.mjs'));
      const { readdirSync } = await import('node:fs');
      for (const sub of readdirSync(profileDir).filter((d) => d.startsWith(`${v}-`))) {
        for (const f of readdirSync(join(profileDir, sub))) printTop(join(profileDir, sub, f), 15);
      }
    }
  }
  await runH2load(`http://${IP.server}:9090/bench.Bench/Unary`, { clients: 4, streams: 8, seconds: 2, warmupSeconds: 0, dir }).then((r) => console.log(JSON.stringify({ name: 'direct', rps: r.rps })));
  console.table(rows);
  await stopAll?.();
  process.exit(0);
}
