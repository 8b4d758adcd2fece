// Developer loop, not part of `npm run bench`: µs per header block of the lean HTTP/2 layer's HPACK
// (sidecar/src/hpack-*.ts) for a typical gRPC unary exchange — steady state (one connection's
// tables warm, as after its first call) and cold (a fresh table, every string a literal) — and the
// heap bytes each block allocates. `node bench/tools/hpack-micro.mjs [--ms 800]` after
// `npm run build`; about 6 s on one core, so it takes no lock (docs/performance.md, "HPACK").
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

const require = createRequire(import.meta.url);
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'sidecar', 'dist', 'src');
const { HpackEncoder } = require(join(dist, 'hpack-encoder.js'));
const { HpackDecoder } = require(join(dist, 'hpack-decoder.js'));
const arg = (name, d) => { const i = process.argv.indexOf(name); return i > 0 ? Number(process.argv[i + 1]) : d; };
const budgetMs = arg('--ms', 800);
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** What grpc-js sends for a unary call through the mesh; only x-request-id differs between calls. */
const request = (id) => [
  ':method', 'POST', ':scheme', 'http', ':path', '/weft.bench.Echo/Unary',
  ':authority', 'echo.default.svc.cluster.local:50051', 'content-type', 'application/grpc', 'te', 'trailers',
  'user-agent', 'grpc-node-js/1.12.6', 'grpc-accept-encoding', 'identity,deflate,gzip', 'x-request-id', id,
];
const response = [':status', '200', 'content-type', 'application/grpc', 'grpc-accept-encoding', 'identity,deflate,gzip', 'grpc-encoding', 'identity'];
const trailers = ['grpc-status', '0', 'grpc-message', ''];
const requests = Array.from({ length: 1024 }, () => request(randomUUID()));

/**
 * µs of this process's CPU (user + system) per call of `fn(i)` over about `budgetMs` of it, after a
 * warm-up: CPU rather than wall time, so other processes on the machine inflate it less.
 */
function micros(fn) {
  for (let i = 0; i < 20000; i++) fn(i);
  let n = 0;
  const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
  const t0 = cpu();
  let spent = 0;
  while (spent < budgetMs * 1000) {
    for (let i = 0; i < 1000; i++) fn(n++);
    spent = cpu() - t0;
  }
  return spent / n;
}

/** Heap bytes allocated per call: heapUsed growth over 1000 calls just after a full GC (median of 15). */
function bytes(fn) {
  const samples = [];
  for (let attempt = 0; attempt < 15; attempt++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1000; i++) fn(i);
    samples.push((process.memoryUsage().heapUsed - before) / 1000);
  }
  return Math.round(samples.sort((a, b) => a - b)[7]);
}

const rows = [];
const row = (name, fn, octets) => rows.push({ case: name, 'CPU µs/block': Number(micros(fn).toFixed(3)), 'heap B/block': bytes(fn), 'block octets': octets });

{
  // One connection: after the first call every field but x-request-id is one octet.
  // Two calls warm a connection: `:path` is indexed the second time it is sent.
  const enc = new HpackEncoder();
  enc.encode(requests[0]);
  enc.encode(requests[0]);
  row('encode request, warm (9 fields, 1 new value)', (i) => enc.encode(requests[i & 1023]), enc.encode(requests[1]).length);
  const enc2 = new HpackEncoder();
  const dec = new HpackDecoder();
  dec.decode(enc2.encode(requests[0]));
  dec.decode(enc2.encode(requests[0]));
  // x-request-id goes without indexing, so these blocks add nothing to the table: replaying them keeps it in step.
  const blocks = requests.map((r) => enc2.encode(r));
  const before = dec.tableSize.entries;
  blocks.forEach((b, i) => { if (dec.decode(b).join() !== requests[i].join()) throw new Error('bad decode'); });
  if (dec.tableSize.entries !== before) throw new Error('replayed blocks changed the table');
  row('decode request, warm', (i) => dec.decode(blocks[i & 1023]), blocks[1].length);
}
{
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  dec.decode(enc.encode(response));
  dec.decode(enc.encode(trailers));
  const r = enc.encode(response);
  const t = enc.encode(trailers);
  row('encode response headers + trailers, warm', () => { enc.encode(response); enc.encode(trailers); }, r.length + t.length);
  row('decode response headers + trailers, warm', () => { dec.decode(r); dec.decode(t); }, r.length + t.length);
}
{
  // A connection's first call: every string a literal, Huffman-coded where shorter.
  const cold = new HpackEncoder().encode(requests[0]);
  row('encode request, cold (new encoder each time)', (i) => new HpackEncoder().encode(requests[i & 1023]), cold.length);
  row('decode request, cold (new decoder each time)', () => new HpackDecoder().decode(cold), cold.length);
}
console.log(`node ${process.version}, ${budgetMs} ms of CPU per case`);
console.table(rows);
