// Variant (c): a pair of Debian haproxy processes standing in for two sidecars. haproxy-1 (the
// client side) forwards to haproxy-2 (the server side), which forwards to the upstream; HTTP mode,
// keep-alive on both sides, one thread each (a Weft sidecar is one Node thread). When `grpc` is
// given, each also has an h2c frontend/backend pair for the gRPC rows. Measures nothing itself.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, tcpOpen, waitFor } from './procs.mjs';

// `tls` (the mTLS variant, bench/mtls-vs-haproxy.mjs): `{ bind, server }`, options appended to the
// bind and server lines of the hop (e.g. `ssl crt ... ca-file ... verify required`).
function config(name, listen, next, grpc, tls = {}) {
  const bind = (opts) => (tls.bind ? ` ${tls.bind}${opts ? ` ${opts}` : ''}` : opts ? ` ${opts}` : '');
  const server = (opts) => (tls.server ? ` ${tls.server}${opts ? ` ${opts}` : ''}` : opts ? ` ${opts}` : '');
  const h2 = grpc
    ? `
frontend grpc_in
  bind ${grpc.listen}${tls.bind ? bind('alpn h2') : ' proto h2'}
  default_backend grpc_next
backend grpc_next
  server next ${grpc.next}${tls.server ? server('alpn h2') : ' proto h2'}
`
    : '';
  return `global
  nbthread 1
  maxconn 4096
  log stderr format raw local0 warning
defaults
  mode http
  log global
  option http-keep-alive
  http-reuse safe
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend http_in
  bind ${listen}${bind(tls.bind ? 'alpn http/1.1' : '')}
  default_backend http_next
backend http_next
  server next ${next}${server(tls.server ? 'alpn http/1.1' : '')}
${h2}`;
}

/** Starts both; `hops` is [{listen, next, grpc?, tls?}] from the client side to the server side. */
export async function startHaproxyPair(dir, hops) {
  const procs = [];
  for (const [i, hop] of hops.entries()) {
    const name = `haproxy-${i + 1}`;
    const cfg = join(dir, `${name}.cfg`);
    writeFileSync(cfg, config(name, hop.listen, hop.next, hop.grpc, hop.tls));
    const p = start(name, '/usr/sbin/haproxy', ['-db', '-f', cfg], { logPath: join(dir, `${name}.log`) });
    const [h, port] = hop.listen.split(':');
    await waitFor(p, () => tcpOpen(h, Number(port)), `listening on ${hop.listen}`);
    procs.push(p);
  }
  return procs;
}
