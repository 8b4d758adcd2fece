// Makes sure the Debian tools the benchmark drives are present: nginx (upstream), haproxy
// (comparison proxy), wrk (closed-loop HTTP load), h2load from nghttp2-client (closed-loop gRPC
// load). Installs them as root; otherwise prints the command and exits 1. Measures nothing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const NEEDED = [
  { bin: '/usr/sbin/nginx', pkg: 'nginx' },
  { bin: '/usr/sbin/haproxy', pkg: 'haproxy' },
  { bin: '/usr/bin/wrk', pkg: 'wrk' },
  { bin: '/usr/bin/h2load', pkg: 'nghttp2-client' },
];

export function ensurePackages() {
  const missing = NEEDED.filter((n) => !existsSync(n.bin)).map((n) => n.pkg);
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`bench: missing ${missing.join(', ')}; as root run:\n  ${cmd}`);
    process.exit(1);
  }
  console.log(`bench: installing ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env, timeout: 180_000 });
    if (r.status !== 0) {
      console.error(`bench: apt-get ${args[0]} failed; run by hand:\n  ${cmd}`);
      process.exit(1);
    }
  }
}
