// Closed-loop gRPC unary throughput: Debian `h2load` (nghttp2) posting an empty gRPC message
// over h2c on C connections with M concurrent streams each, counting req/s and failures.
// h2load checks the HTTP status only; the bench checks grpc-status by comparing `succeeded` with
// the upstream's own count of answered calls (grpc-count.mjs), and the open-loop run checks it
// call by call. `authority` overrides `:authority` (the Weft pair routes by it); `warmupSeconds`
// 0 counts every request h2load sends, which that comparison needs.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start } from './procs.mjs';

export async function runH2load(url, { clients = 4, streams = 8, seconds = 10, warmupSeconds = 1, authority, dir }) {
  const body = join(dir, 'grpc-empty.bin');
  writeFileSync(body, Buffer.from([0, 0, 0, 0, 0]));
  const args = [
    '-c', String(clients), '-m', String(streams), '-t', '1',
    '-D', String(seconds), ...(warmupSeconds > 0 ? ['--warm-up-time', String(warmupSeconds)] : []),
    '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    ...(authority ? ['-H', `:authority: ${authority}`] : []), url,
  ];
  const p = start('h2load', '/usr/bin/h2load', args, { capture: true });
  const { code } = await p.done;
  const out = p.out;
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  if (code !== 0 || !Number.isFinite(rps) || !m) throw new Error(`h2load exited ${code}:\n${out}${p.err}`);
  return { rps, started: Number(m[2]), done: Number(m[3]), succeeded: Number(m[4]), errors: Number(m[5]) + Number(m[6]), raw: out };
}
