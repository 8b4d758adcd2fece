// Closed-loop gRPC unary throughput: Debian `h2load` (nghttp2) posting an empty gRPC message
// over h2c on C connections with M concurrent streams each, counting req/s and failures.
// h2load checks the HTTP status only; grpc-status is checked by the open-loop run.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start } from './procs.mjs';

export async function runH2load(url, { clients = 4, streams = 8, seconds = 10, warmupSeconds = 1, dir }) {
  const body = join(dir, 'grpc-empty.bin');
  writeFileSync(body, Buffer.from([0, 0, 0, 0, 0]));
  const args = [
    '-c', String(clients), '-m', String(streams), '-t', '1',
    '-D', String(seconds), '--warm-up-time', String(warmupSeconds),
    '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url,
  ];
  const p = start('h2load', '/usr/bin/h2load', args, { capture: true });
  const { code } = await p.done;
  const out = p.out;
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  if (code !== 0 || !Number.isFinite(rps) || !m) throw new Error(`h2load exited ${code}:\n${out}${p.err}`);
  return { rps, errors: Number(m[5]) + Number(m[6]), raw: out };
}
