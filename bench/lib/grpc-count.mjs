// Asks the bench's gRPC upstream (grpc-server.mjs) how many Unary calls it has answered, over a
// fresh h2c connection straight to it (never through a proxy). Measures nothing itself.
import http2 from 'node:http2';

/** Resolves to the server's count of answered Unary calls; rejects on any failure. */
export function grpcAnswered(url, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    const fail = (e) => {
      session.destroy();
      reject(new Error(`cannot read the gRPC server's call count at ${url}: ${e.message ?? e}`));
    };
    session.on('error', fail);
    session.setTimeout(timeoutMs, () => fail(new Error('timeout')));
    const s = session.request({ ':method': 'POST', ':path': '/bench.Bench/Count', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks = [];
    let status = '';
    s.on('response', (h) => (status = h['grpc-status'] ?? status));
    s.on('trailers', (t) => (status = t['grpc-status'] ?? status));
    s.on('data', (d) => chunks.push(d));
    s.on('error', fail);
    s.on('end', () => {
      session.close();
      const body = Buffer.concat(chunks);
      // One gRPC message: 1 byte compressed flag, 4 bytes length, then the payload.
      const n = body.length >= 5 ? Number(body.subarray(5, 5 + body.readUInt32BE(1)).toString('ascii')) : NaN;
      if (status !== '0' || !Number.isInteger(n)) fail(new Error(`grpc-status ${status || '?'}, body ${body.length} bytes`));
      else resolve(n);
    });
    s.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}
