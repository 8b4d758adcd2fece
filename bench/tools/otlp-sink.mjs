// A local OTLP/HTTP sink for tracing cost runs (docs/performance.md "Tracing: cost"): reads each
// export and answers 200 at once, counting exports and bytes, decoding nothing (a collector's own
// cost is not the sidecar's). Used by quick-pair.mjs; alone, beside `npm run bench`:
//   node bench/tools/otlp-sink.mjs [PORT, default 4399]   (127.0.0.1; prints its counts on SIGTERM/SIGINT)
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

/** Listens on `host:port`; resolves to { counts: { posts, bytes }, close() }. */
export async function startOtlpSink(host, port) {
  const counts = { posts: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on('data', (c) => (counts.bytes += c.length));
    req.on('end', () => {
      counts.posts++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end();
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { counts, close: () => new Promise((resolve) => server.close(resolve)), server };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 4399);
  const sink = await startOtlpSink('127.0.0.1', port);
  console.log(`OTLP sink on http://127.0.0.1:${port}/v1/traces`);
  const stop = () => {
    console.log(`OTLP sink: ${sink.counts.posts} exports, ${(sink.counts.bytes / 1e6).toFixed(1)} MB`);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
