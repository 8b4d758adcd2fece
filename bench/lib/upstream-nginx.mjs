// The upstream every variant ends at: Debian nginx, one process (master_process off, so it is
// also the single worker), access log off, answering `200 ok` to every HTTP/1.1 request. It runs
// from a temp prefix with its own pid file, error log and temp paths. Measures nothing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, tcpOpen, waitFor } from './procs.mjs';

export async function startNginx(dir, host, port) {
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server {
    listen ${host}:${port} reuseport;
    location / { return 200 "ok"; }
  }
}
`,
  );
  const log = join(dir, 'nginx.log');
  const p = start('nginx', '/usr/sbin/nginx', ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', conf], { logPath: log });
  p.logPath = join(dir, 'nginx-error.log');
  await waitFor(p, () => tcpOpen(host, port), `listening on ${host}:${port}`);
  return p;
}
