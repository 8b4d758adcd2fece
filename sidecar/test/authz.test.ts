/**
 * Authorization over real sockets: a local-mode inbound listener (xDS decoded with the real protos,
 * validated by buildProxyConfig, run by a ListenerManager) with RBAC filters as translate-authz.ts
 * emits them; the authorization matrix and the bypass attempts on HTTP/1.1 and h2, gRPC's
 * PERMISSION_DENIED, TCP close, the denial metric and log; principals over real TLS with
 * certificates made by openssl.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createLogger } from '@weft/api';
import { buildProxyConfig } from '../src/config-from-xds';
import type { ProxyConfig } from '../src/config';
import { ListenerManager } from '../src/listener-manager';
import { MetricsRegistry } from '../src/metrics';
import { UpstreamPool } from '../src/upstream-pool';
import { AuthzDenials, authorizeHttp, authorizeTcp } from '../src/authz-enforce';
import { rbacEngineOf } from '../src/authz-from-xds';
import { encodeProxyV2 } from '../src/proxy-protocol';
import { send, startUpstream, type Upstream } from './fixtures';
import { grpcHeaders, grpcReply, h2Send, startH2App, type H2App } from './h2-fixtures';
import { resources, type Obj } from './xds-fixtures';
import { and, ANY, inboundListenerXds, INBOUND_PORT, key, makePki, methods, paths, principal, rbacHttp, rbacTcp, staticClusterXds, type TestPki } from './authz-fixtures';

const POD = '127.0.43.21';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

const HTTP_RBAC: Obj[] = [
  rbacHttp('DENY', {
    [key('shop', 'deny-admin')]: { permissions: [paths({ exact: '/admin' }, { prefix: '/admin/' })], principals: [ANY] },
    [key('shop', 'deny-internal')]: { permissions: [{ header: { name: ':authority', string_match: { safe_regex: { regex: 'internal\\.example(:[0-9]+)?' } } } }], principals: [ANY] },
  }),
  rbacHttp('ALLOW', {
    [key('shop', 'public')]: { permissions: [and(paths({ prefix: '/public/' }, { prefix: '/admin/' }), methods('GET', 'POST'))], principals: [ANY] },
    [key('shop', 'readers')]: { permissions: [paths({ prefix: '/api/' })], principals: [principal({ exact: FRONTEND })] },
  }),
];

let app: Upstream;
let h2app: H2App;
let echo: net.Server;
let tcpPort: number;
let manager: ListenerManager;
let pool: UpstreamPool;
let registry: MetricsRegistry;
const logs: Obj[] = [];

function configWith(tcpRbac: Obj[]): ProxyConfig {
  const built = buildProxyConfig(resources({
    listeners: [inboundListenerXds(POD, [app.port, h2app.port], tcpPort, HTTP_RBAC, tcpRbac)],
    clusters: [staticClusterXds(`inbound|${app.port}||`, POD, app.port), staticClusterXds(`inbound|${h2app.port}||`, '127.0.0.1', h2app.port), staticClusterXds(`inbound|${tcpPort}||`, POD, tcpPort)],
  }));
  assert.ok(built.ok, JSON.stringify(built));
  return built.config;
}
let current: ProxyConfig;

before(async () => {
  app = await startUpstream('app', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`app saw ${req.url}`);
  }, POD);
  h2app = await startH2App((stream, call) => {
    if (String(call.headers['content-type']).startsWith('application/grpc')) return grpcReply(stream, 0, ['ok']);
    stream.respond({ ':status': 200 });
    stream.end(`h2 app saw ${call.headers[':path']}`);
  });
  echo = net.createServer((s) => s.on('data', (d) => s.write(`echo ${d}`)).on('error', () => undefined));
  await new Promise<void>((r) => echo.listen(0, POD, r));
  tcpPort = (echo.address() as AddressInfo).port;
  registry = new MetricsRegistry();
  const log = createLogger({}, (line) => logs.push(JSON.parse(line)), 0);
  pool = new UpstreamPool();
  current = configWith([rbacTcp('ALLOW', { [key('shop', 'db')]: { permissions: [{ destination_port: tcpPort }], principals: [{ direct_remote_ip: { address_prefix: '127.0.43.0', prefix_len: { value: 24 } } }] } })]);
  manager = new ListenerManager(() => current, { log, pool, authzDenials: new AuthzDenials(registry, log) });
  assert.deepEqual(await manager.apply(current), []);
});

after(async () => {
  manager.destroy();
  pool.destroy();
  await app.close();
  await h2app.close();
  echo.close();
});

const DENIED = 'RBAC: access denied';

/** Raw HTTP/1.1 (paths a client library would clean up or refuse), one request, connection closed after. */
function raw(path: string, host = 'reviews'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(INBOUND_PORT, POD);
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', reject);
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

test('HTTP/1.1 matrix: allowed, denied by DENY, DENY overriding ALLOW, no ALLOW match denied, principal rules need mTLS', async () => {
  const table: [method: string, path: string, status: number, appSaw?: string][] = [
    ['GET', '/public/x', 200, '/public/x'],
    ['POST', '/public/x', 200, '/public/x'],
    ['GET', '/public/x?next=/admin', 200, '/public/x?next=/admin'],
    ['DELETE', '/public/x', 403], // ALLOW public is GET/POST only: nothing allows it
    ['GET', '/other', 403], // no ALLOW policy matches
    ['GET', '/admin/users', 403], // ALLOW public matches /admin/*, DENY deny-admin wins
    ['GET', '/admin', 403],
    ['GET', '/api/books', 403], // readers needs the frontend's certificate; plaintext has no principal
  ];
  const before = app.received.length;
  for (const [method, path, status, appSaw] of table) {
    const r = await send(INBOUND_PORT, { address: POD, method, path, host: 'reviews.shop.svc.cluster.local', headers: { 'x-weft-target-port': String(app.port) } });
    assert.equal(r.status, status, `${method} ${path}`);
    if (status === 403) assert.equal(r.body, DENIED, `${method} ${path}`);
    else assert.equal(r.body, `app saw ${appSaw}`);
  }
  // Only the allowed requests reached the app.
  assert.equal(app.received.length - before, 3);
});

test('bypass attempts against a DENY on /admin and on Host internal.example are decided on the normalized target (FIELD-NOTES 22)', async () => {
  const table: [path: string, host: string, status: number][] = [
    ['/public/../admin/x', 'reviews', 403], // dot segments removed first
    ['/public/%2E%2E/admin/x', 'reviews', 403], // encoded dots decoded, then removed
    ['//admin/x', 'reviews', 403], // slashes merged
    ['/.//admin/x', 'reviews', 403],
    ['/./admin/x', 'reviews', 403],
    ['/%61dmin/x', 'reviews', 403], // encoded unreserved character decoded
    ['/admin;x/y', 'reviews', 403], // ;parameters are removed for matching
    ['/admin;jsessionid=1', 'reviews', 403],
    ['/admin%2Fx', 'reviews', 400], // encoded slash: refused before authorization
    ['/admin%2fx', 'reviews', 400],
    ['/admin%5Cx', 'reviews', 400], // encoded backslash: refused
    ['/admin\\x', 'reviews', 400], // raw backslash: refused
    ['/admin/x#frag', 'reviews', 400], // fragment: refused
    ['/public/x', 'internal.example', 403],
    ['/public/x', 'INTERNAL.Example', 403], // Host is matched lower-cased
    ['/public/x', 'internal.example.', 403], // and without its trailing dot
    ['/public/x', 'internal.example:8080', 403], // and with a port
    // Paths are case-sensitive (as Envoy's): /ADMIN is not /admin for the DENY rule, but no ALLOW
    // rule allows it either — an ALLOW list is the safe form for case-insensitive apps.
    ['/ADMIN/x', 'reviews', 403],
  ];
  for (const [path, host, status] of table) {
    const r = await raw(path, host);
    assert.equal(r.status, status, `${path} Host: ${host}`);
    if (status === 403) assert.equal(r.body, DENIED);
  }
  // Which policy decided: the DENY ones by name, the case-changed path by "no ALLOW matched".
  const denied = logs.filter((l) => l.msg === 'authorization denied');
  const of = (path: string): Obj | undefined => denied.find((l) => l.path === path);
  assert.equal(of('/admin/x')?.policy, 'shop/deny-admin');
  assert.equal(of('/admin/x')?.rule, 0);
  assert.equal(of('/ADMIN/x')?.policy, 'none');
  assert.equal(of('/ADMIN/x')?.action, 'ALLOW');
  assert.equal(denied.find((l) => l.host === 'internal.example')?.policy, 'shop/deny-internal');
});

test('HTTP/2 and gRPC: the same decisions; a denied gRPC call is PERMISSION_DENIED (7) trailers-only', async () => {
  const h = (path: string, extra: Obj = {}): Obj => ({ ':method': 'GET', ':path': path, ':authority': 'reviews', 'x-weft-target-port': String(h2app.port), ...extra });
  const cases: [Obj, number][] = [
    [h('/public/x'), 200],
    [h('/admin/x'), 403],
    [h('//admin/x'), 403],
    [h('/public/../admin/x'), 403],
    [h('/admin;x'), 403],
    [h('/public/x', { ':authority': 'Internal.Example:80' }), 403],
    [h('/other'), 403],
    [h('/admin%2Fx'), 400],
  ];
  for (const [headers, status] of cases) {
    const r = await h2Send(await h2Port(), headers);
    assert.equal(r.headers[':status'], status, JSON.stringify(headers));
    if (status === 403) assert.equal(r.body.toString(), DENIED);
  }
  const grpc = await h2Send(await h2Port(), { ...grpcHeaders('reviews', '/weft.test.Echo/Unary'), 'x-weft-target-port': String(h2app.port) });
  assert.equal(grpc.headers[':status'], 200);
  assert.equal(grpc.headers['grpc-status'], '7');
  assert.equal(grpc.headers['grpc-message'], DENIED);
  assert.equal(grpc.body.length, 0);
  const allowed = await h2Send(await h2Port(), { ...grpcHeaders('reviews', '/public/Echo'), 'x-weft-target-port': String(h2app.port) });
  assert.equal(allowed.trailers?.['grpc-status'], '0');
});

/** h2Send connects to 127.0.0.1:port; the listener is on POD, so go through a one-shot relay. */
async function h2Port(): Promise<number> {
  const relay = net.createServer((c) => {
    const u = net.connect(INBOUND_PORT, POD);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    relay.close();
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return (relay.address() as AddressInfo).port;
}

function tcpExchange(from: string): Promise<string | 'closed'> {
  return new Promise((resolve) => {
    const s = net.connect({ host: POD, port: INBOUND_PORT, localAddress: from });
    let data = '';
    s.on('connect', () => s.write(Buffer.concat([encodeProxyV2({ address: from, port: 40000 }, { address: POD, port: tcpPort }), Buffer.from('hi')])));
    s.on('data', (d) => {
      data += d;
      s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(data || 'closed'));
  });
}

test('TCP: an allowed connection is proxied; a denied one is closed without reaching the app, and counted', async () => {
  assert.equal(await tcpExchange('127.0.43.11'), 'echo hi');
  const accepted = await new Promise<number>((r) => echo.getConnections((_e, n) => r(n)));
  assert.equal(await tcpExchange('127.0.0.1'), 'closed'); // not in the ALLOW rule's ipBlocks
  assert.equal(await new Promise<number>((r) => echo.getConnections((_e, n) => r(n))), accepted);
  assert.match(await registry.render(), /weft_authz_denials_total\{policy="none",action="ALLOW"\} \d+/);
  const line = logs.find((l) => l.msg === 'authorization denied' && l.protocol === 'tcp');
  assert.equal(line?.port, tcpPort);
  assert.equal(line?.client, '127.0.0.1');
  // A DENY rule on the port: the TCP chain closes every connection, whatever the source.
  current = configWith([rbacTcp('DENY', { [key('shop', 'no-db')]: { permissions: [{ destination_port: tcpPort }], principals: [ANY] } })]);
  assert.deepEqual(await manager.apply(current), []);
  assert.equal(await tcpExchange('127.0.43.11'), 'closed');
  assert.match(await registry.render(), /weft_authz_denials_total\{policy="shop\/no-db",action="DENY"\} 1\n/);
});

test('every denial is counted by policy and action, with bounded labels (no path)', async () => {
  const text = await registry.render();
  assert.match(text, /# TYPE weft_authz_denials_total counter/);
  assert.match(text, /weft_authz_denials_total\{policy="shop\/deny-admin",action="DENY"\} \d+/);
  assert.match(text, /weft_authz_denials_total\{policy="shop\/deny-internal",action="DENY"\} \d+/);
  assert.doesNotMatch(text, /path=|\/admin/);
});

test('a bad RBAC config is a NACK with a clear detail, never a partial policy', () => {
  const bad = (typedConfig: Obj): string => {
    const r = rbacEngineOf(typedConfig, 'listener.http_filters["rbac"]');
    assert.equal(r.ok, false);
    return (r as { error: string }).error;
  };
  assert.match(bad({ rules: { action: 'LOG', policies: {} } }), /LOG is not supported/);
  assert.match(bad({ rules: { policies: { p: { permissions: [{ any: true }], principals: [ANY], condition: { id: 1 } } } } }), /CEL conditions are not supported/);
  assert.match(bad({ rules: { policies: { p: { permissions: [{ requested_server_name: { exact: 'x' } }], principals: [ANY] } } } }), /permissions\[0\]: permission requested_server_name is not supported/);
  assert.match(bad({ rules: { policies: { p: { permissions: [{ url_path: { path: { safe_regex: { regex: '(?i)x' } } } }], principals: [ANY] } } } }), /regex "\(\?i\)x" is not supported/);
  assert.match(bad({ rules: { policies: { p: { permissions: [ANY], principals: [] } } } }), /principals: at least one principal is required/);
  assert.match(bad({ shadow_rules: { policies: {} } }), /shadow/);
});

// ---- principals over real TLS ----------------------------------------------------------------

let pki: TestPki;
before(() => {
  pki = makePki({
    frontend: { spiffe: FRONTEND },
    test: { spiffe: 'spiffe://cluster.local/ns/test/sa/tester' },
    forged: { spiffe: FRONTEND, otherCa: true },
  });
});
after(() => pki?.cleanup());

/** A TLS server of our own that authorizes each connection's first request head with `authorizeHttp`. */
async function tlsDecisions(client: string | undefined, path: string, policies: Obj[]): Promise<{ status: number; principal: unknown }> {
  const authz = policies.map((p, i) => {
    const e = rbacEngineOf(p.typed_config, `f${i}`);
    assert.ok(e.ok && e.value);
    return e.value;
  });
  const log: Obj[] = [];
  const denials = new AuthzDenials(new MetricsRegistry(), createLogger({}, (l) => log.push(JSON.parse(l)), 0));
  const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.caPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (socket) => {
    socket.once('data', (head) => {
      const [method, target] = head.toString().split(' ');
      const denied = authorizeHttp(authz, denials, { socket, remoteAddress: socket.remoteAddress, method: method!, headers: {}, target: { host: 'reviews', path: target! }, port: 9080 }, 'tls-test');
      socket.end(denied ? '403' : '200');
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.43.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const creds = client ? pki.client(client) : {};
    const status = await new Promise<number>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.43.1', port, ca: pki.caPem, ...creds, checkServerIdentity: () => undefined });
      let got = '';
      s.on('secureConnect', () => s.write(`GET ${path} HTTP/1.1\r\n\r\n`));
      s.on('data', (d) => (got += d));
      s.on('end', () => resolve(Number(got)));
      s.on('error', reject);
    });
    return { status, principal: log[0]?.principal };
  } finally {
    server.close();
  }
}

test('principals over mTLS (openssl-made certificates): the verified SPIFFE ID is matched; another CA or no certificate has no principal', async () => {
  const readers = [rbacHttp('ALLOW', { [key('shop', 'readers')]: { permissions: [paths({ prefix: '/api/' })], principals: [principal({ exact: FRONTEND })] } })];
  assert.equal((await tlsDecisions('frontend', '/api/books', readers)).status, 200);
  assert.deepEqual(await tlsDecisions('test', '/api/books', readers), { status: 403, principal: 'spiffe://cluster.local/ns/test/sa/tester' });
  // Same URI SAN, but signed by a CA the server does not trust: not a principal at all.
  assert.deepEqual(await tlsDecisions('forged', '/api/books', readers), { status: 403, principal: null });
  assert.deepEqual(await tlsDecisions(undefined, '/api/books', readers), { status: 403, principal: null });
  // Namespaces match the SPIFFE ID's ns segment (translate-authz.ts's regex); DENY from ns test.
  const denyTest = [rbacHttp('DENY', { [key('shop', 'no-test')]: { permissions: [ANY], principals: [principal({ safe_regex: { regex: 'spiffe://[^/]+/ns/test/sa/[^/]+' } })] } })];
  assert.equal((await tlsDecisions('test', '/x', denyTest)).status, 403);
  assert.equal((await tlsDecisions('frontend', '/x', denyTest)).status, 200);
  // Any authenticated peer (principals: ["*"]): a verified certificate, whichever.
  const anyAuth = [rbacHttp('ALLOW', { [key('shop', 'mesh-only')]: { permissions: [ANY], principals: [principal({ safe_regex: { regex: '.+' } })] } })];
  assert.equal((await tlsDecisions('test', '/x', anyAuth)).status, 200);
  assert.equal((await tlsDecisions(undefined, '/x', anyAuth)).status, 403);
});

test('TCP principals over mTLS: authorizeTcp reads the TLS socket\'s verified identity', async () => {
  const e = rbacEngineOf(rbacTcp('ALLOW', { [key('shop', 'fe')]: { permissions: [{ destination_port: 5432 }], principals: [principal({ exact: FRONTEND })] } }).typed_config, 'f');
  assert.ok(e.ok && e.value);
  const denials = new AuthzDenials(new MetricsRegistry(), createLogger({}, () => undefined, 0));
  const results: boolean[] = [];
  const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.caPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
    results.push(authorizeTcp([e.value!], denials, socket, 5432, 'tls-tcp'));
    socket.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.43.1', r));
  const port = (server.address() as AddressInfo).port;
  for (const who of ['frontend', 'test', 'forged']) {
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.43.1', port, ca: pki.caPem, ...pki.client(who), checkServerIdentity: () => undefined });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  }
  server.close();
  assert.deepEqual(results, [true, false, false]);
  assert.equal(denials.count('none', 'ALLOW'), 2);
});

test('an inbound listener with a bad RBAC filter is NACKed naming the listener and the filter; nothing of it is applied', () => {
  const built = buildProxyConfig(resources({
    listeners: [inboundListenerXds(POD, [app.port], tcpPort, [rbacHttp('DENY', { [key('shop', 'x')]: { permissions: [{ url_path: { path: { safe_regex: { regex: '(?i)admin' } } } }], principals: [ANY] } })], [])],
    clusters: [staticClusterXds(`inbound|${app.port}||`, POD, app.port), staticClusterXds(`inbound|${tcpPort}||`, POD, tcpPort)],
  }));
  assert.equal(built.ok, false);
  assert.match((built as { errors: string[] }).errors.join('\n'), /virtualInbound.*http_filters\["envoy.filters.http.rbac"\]\.rules\.policies\["ns\[shop\]-policy\[x\]-rule\[0\]"\]\.permissions\[0\]\.url_path\.path\.safe_regex: regex "\(\?i\)admin" is not supported/);
  const tcpBad = buildProxyConfig(resources({
    listeners: [inboundListenerXds(POD, [app.port], tcpPort, [], [rbacTcp('DENY', { p: { permissions: [{ destination_ip: { address_prefix: '10.0.0.0' } }], principals: [ANY] } })])],
  }));
  assert.equal(tcpBad.ok, false);
  assert.match((tcpBad as { errors: string[] }).errors.join('\n'), /filter_chains\[1\]\.filters\[0\]\.rules\.policies\["p"\]\.permissions\[0\]: permission destination_ip is not supported/);
});
