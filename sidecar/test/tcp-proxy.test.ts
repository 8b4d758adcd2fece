/**
 * Raw TCP in the sidecar: detection (pure), PROXY v2 (pure), filter chain matching (pure), and the
 * TCP proxy over real loopback sockets through a `ListenerManager` (half-close, reset, connect
 * failures reaching outlier detection, max_connections, idle timeout, drain on removal, and an HTTP
 * listener's TCP fallback).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { silentLogger } from '@weft/api';
import type { ConnectionDispatch, FilterChain, ProxyConfig, TcpListener } from '../src/config';
import { sniffProtocol } from '../src/detect-protocol';
import { chainsForDestination, selectChain } from '../src/filter-chain';
import { ListenerManager } from '../src/listener-manager';
import { encodeProxyV2, parseProxyV2, PROXY_V2_SIGNATURE } from '../src/proxy-protocol';
import { UpstreamPool } from '../src/upstream-pool';
import { cluster, directResponse, endpoint, listener, proxyConfig, route, routeTable, vhost } from './fixtures';

// ---- pure: detection, PROXY v2, chain matching ------------------------------------------------

test('detection: HTTP/1 by a known method and a space, h2c by the whole preface, TLS by its record header, anything else opaque', () => {
  const b = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));
  const cases: [Buffer, string | undefined][] = [
    [b('GET / HTTP/1.1\r\n'), 'http1'],
    [b('M-SEARCH * HTTP/1.1'), 'http1'],
    [b('GE'), undefined], // could still be GET
    [b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http2'],
    [b('PRI * HTTP/2'), undefined],
    [b([0x16, 0x03, 0x01, 0x02, 0x00]), 'tls'],
    [b([0x16, 0x03]), undefined],
    [b([0x16, 0x02]), 'opaque'],
    [b('*3\r\n$3\r\nSET\r\n'), 'opaque'], // Redis
    [b('SET k v\r\n'), 'opaque'], // a word and a space, but no HTTP method
    [b('get / HTTP/1.1'), 'opaque'], // methods are case-sensitive
    [b('SSH-2.0-OpenSSH'), 'opaque'],
    [b('GETX / HTTP/1.1'), 'opaque'],
    [PROXY_V2_SIGNATURE, 'opaque'],
  ];
  for (const [data, want] of cases) assert.equal(sniffProtocol(data), want, JSON.stringify(data.toString('latin1')));
});

test('PROXY v2: what is encoded parses back, IPv4 and IPv6; a prefix asks for more; other bytes are no header', () => {
  const v4 = encodeProxyV2({ address: '127.0.0.11', port: 40000 }, { address: '127.0.0.21', port: 2525 });
  assert.deepEqual(parseProxyV2(Buffer.concat([v4, Buffer.from('rest')])), {
    kind: 'header', length: 28, command: 'PROXY', source: { address: '127.0.0.11', port: 40000 }, destination: { address: '127.0.0.21', port: 2525 },
  });
  const v6 = parseProxyV2(encodeProxyV2({ address: 'fd00::1', port: 1 }, { address: '127.0.0.21', port: 3306 }));
  assert.equal(v6.kind === 'header' && v6.command === 'PROXY' ? `${v6.source.address} ${v6.destination.address}:${v6.destination.port}` : v6.kind, 'fd00:0:0:0:0:0:0:1 0:0:0:0:0:ffff:7f00:15:3306');
  assert.deepEqual(parseProxyV2(v4.subarray(0, 20)), { kind: 'incomplete' });
  assert.deepEqual(parseProxyV2(Buffer.from('GET / HTTP/1.1')), { kind: 'none' });
  const v1 = Buffer.from(v4);
  v1[12] = 0x11;
  assert.equal(parseProxyV2(v1).kind, 'invalid');
});

const tcpChain = (name: string, match: FilterChain['match'] = {}): FilterChain => ({
  name, match, filter: { kind: 'tcp', proxy: { statPrefix: name, target: { kind: 'cluster', cluster: name }, idleTimeoutMs: 0 } },
});
const httpChain = (name: string, match: FilterChain['match'] = {}): FilterChain => ({ name, match, filter: { kind: 'http' } });
const dispatch = (chains: FilterChain[], defaultChain?: FilterChain): ConnectionDispatch => ({
  chains, ...(defaultChain ? { defaultChain } : {}), originalDst: false, proxyProtocol: false, detectTimeoutMs: 200, fallbackOnTimeout: true,
});

test('filter chains are matched as Envoy does: destination port, then the longest address prefix, then transport, then application protocols', () => {
  const H = ['http/1.1', 'http/1.0', 'h2c'];
  const d = dispatch([
    tcpChain('db', { destinationPort: 3306, prefixRanges: [{ address: '10.96.0.5', prefixLen: 32 }] }),
    tcpChain('subnet-db', { destinationPort: 3306, prefixRanges: [{ address: '10.96.0.0', prefixLen: 16 }] }),
    httpChain('api-http', { destinationPort: 8080, applicationProtocols: H }),
    tcpChain('api-tls', { destinationPort: 8080, transportProtocol: 'tls' }),
    tcpChain('api', { destinationPort: 8080 }),
    httpChain('http', { applicationProtocols: H }),
  ], tcpChain('passthrough'));
  const pick = (port: number, address: string, transportProtocol?: string, applicationProtocols?: string[]): string | undefined =>
    selectChain(chainsForDestination(d, port, address), { destinationPort: port, destinationAddress: address, ...(transportProtocol ? { transportProtocol } : {}), ...(applicationProtocols ? { applicationProtocols } : {}) }, d)?.name;
  assert.equal(pick(3306, '10.96.0.5'), 'db');
  assert.equal(pick(3306, '10.96.7.7'), 'subnet-db');
  assert.equal(pick(3306, '10.1.0.1'), 'passthrough'); // port 3306 has chains, none for this address
  assert.equal(pick(8080, '1.2.3.4', 'raw_buffer', ['http/1.1']), 'api-http');
  assert.equal(pick(8080, '1.2.3.4', 'tls', []), 'api-tls');
  assert.equal(pick(8080, '1.2.3.4', 'raw_buffer', []), 'api');
  assert.equal(pick(80, '1.2.3.4', 'raw_buffer', ['h2c']), 'http');
  assert.equal(pick(80, '1.2.3.4', 'tls', []), 'passthrough');
});

// ---- real sockets ------------------------------------------------------------------------------

const BANNER = 'hello from upstream\n';
const upstreams: net.Server[] = [];
after(async () => {
  for (const s of upstreams) await new Promise((r) => s.close(r));
});

/** A banner-then-echo server; on the client's FIN it sends `bye` and ends. */
async function echoUpstream(opts: { banner?: boolean } = {}): Promise<{ port: number; accepted: () => number; sockets: Set<net.Socket> }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    if (opts.banner !== false) s.write(BANNER);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('bye\n'));
    s.on('error', () => undefined);
  });
  upstreams.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, accepted: () => accepted, sockets };
}

function tcpListener(name: string, d: ConnectionDispatch): TcpListener {
  return { name, direction: 'outbound', address: '127.0.0.1', port: 0, connections: d };
}

async function managed(config: ProxyConfig): Promise<{ manager: ListenerManager; apply(c: ProxyConfig): Promise<string[]>; port(name: string): number; close(): Promise<void> }> {
  let current = config;
  const pool = new UpstreamPool();
  const manager = new ListenerManager(() => current, { log: silentLogger, pool });
  const apply = async (c: ProxyConfig): Promise<string[]> => {
    current = c;
    return manager.apply(c);
  };
  assert.deepEqual(await apply(config), []);
  return {
    manager,
    apply,
    port: (name) => (manager.getTcp(name) ?? manager.get(name))!.address()!.port,
    async close() {
      manager.destroy();
      pool.destroy();
    },
  };
}

function withTcp(listeners: TcpListener[], clusters: ReturnType<typeof cluster>[], endpoints: Record<string, ReturnType<typeof endpoint>[]>): ProxyConfig {
  return { ...proxyConfig({ clusters, endpoints }), tcpListeners: new Map(listeners.map((l) => [l.name, l])) };
}

interface Client {
  readonly socket: net.Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves once the received text satisfies `until`. */
  wait(until: (t: string) => boolean, timeoutMs?: number): Promise<string>;
  readonly ended: Promise<void>;
  readonly closed: Promise<{ error?: NodeJS.ErrnoException }>;
}

function client(port: number): Client {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let text = '';
  let error: NodeJS.ErrnoException | undefined;
  const waiters = new Set<() => void>();
  socket.on('data', (d) => {
    text += d;
    for (const w of waiters) w();
  });
  socket.on('error', (e) => (error = e));
  // The proxy closed its side: close ours too (the client under test only ever half-closes first).
  socket.on('end', () => socket.end());
  return {
    socket,
    text: () => text,
    wait: (until, timeoutMs = 3000) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (!until(text)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(text);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out; got ${JSON.stringify(text)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    }),
    ended: new Promise((r) => socket.once('end', r)),
    closed: new Promise((r) => socket.once('close', () => r(error ? { error } : {}))),
  };
}

test('TCP: bytes flow both ways, and a client FIN is forwarded as a FIN: the upstream still answers, then closes', async () => {
  const up = await echoUpstream();
  const m = await managed(withTcp([tcpListener('t', dispatch([tcpChain('db')]))], [cluster('db')], { db: [endpoint('127.0.0.1', up.port)] }));
  try {
    const c = client(m.port('t'));
    await c.wait((t) => t === BANNER);
    c.socket.write('ping\n');
    await c.wait((t) => t.endsWith('ping\n'));
    c.socket.end();
    await c.wait((t) => t.endsWith('bye\n'));
    await c.ended;
    assert.deepEqual(await c.closed, {});
  } finally {
    await m.close();
  }
});

test('TCP: an upstream reset reaches the client as a reset', async () => {
  const up = await echoUpstream();
  const m = await managed(withTcp([tcpListener('t', dispatch([tcpChain('db')]))], [cluster('db')], { db: [endpoint('127.0.0.1', up.port)] }));
  try {
    const c = client(m.port('t'));
    await c.wait((t) => t === BANNER);
    for (const s of up.sockets) s.resetAndDestroy();
    const { error } = await c.closed;
    assert.equal(error?.code, 'ECONNRESET');
  } finally {
    await m.close();
  }
});

test('TCP: a refused endpoint counts for outlier detection, and the next connections go to the healthy one', async () => {
  const up = await echoUpstream();
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise((r) => dead.close(r));
  const od = { consecutive5xx: 0, consecutiveGatewayFailure: 1, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 100 };
  const m = await managed(withTcp([tcpListener('t', dispatch([tcpChain('db')]))], [cluster('db', { outlierDetection: od })], {
    db: [endpoint('127.0.0.1', deadPort), endpoint('127.0.0.1', up.port)],
  }));
  try {
    const results: string[] = [];
    for (let i = 0; i < 8; i++) {
      const c = client(m.port('t'));
      const outcome = await Promise.race([c.wait((t) => t === BANNER).then(() => 'ok'), c.closed.then(() => 'closed')]);
      results.push(outcome);
      c.socket.destroy();
    }
    // Round robin tries the dead endpoint at most once: then it is ejected.
    assert.ok(results.filter((r) => r === 'closed').length <= 1, results.join(' '));
    assert.deepEqual(results.slice(2), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
  } finally {
    await m.close();
  }
});

test('TCP: at max_connections a new connection is refused at once, and admitted again once one closes', async () => {
  const up = await echoUpstream();
  const m = await managed(withTcp([tcpListener('t', dispatch([tcpChain('db')]))], [cluster('db', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 100 } })], {
    db: [endpoint('127.0.0.1', up.port)],
  }));
  try {
    const first = client(m.port('t'));
    await first.wait((t) => t === BANNER);
    const second = client(m.port('t'));
    await second.closed;
    assert.equal(second.text(), '');
    first.socket.destroy();
    await first.closed;
    await new Promise((r) => setTimeout(r, 50));
    const third = client(m.port('t'));
    await third.wait((t) => t === BANNER);
    third.socket.destroy();
    assert.equal(up.accepted(), 2);
  } finally {
    await m.close();
  }
});

test('TCP: no byte either way for the idle timeout closes both sides', async () => {
  const up = await echoUpstream();
  const idle: FilterChain = { name: 'db', match: {}, filter: { kind: 'tcp', proxy: { statPrefix: 'db', target: { kind: 'cluster', cluster: 'db' }, idleTimeoutMs: 200 } } };
  const m = await managed(withTcp([tcpListener('t', dispatch([idle]))], [cluster('db')], { db: [endpoint('127.0.0.1', up.port)] }));
  try {
    const c = client(m.port('t'));
    await c.wait((t) => t === BANNER);
    const started = Date.now();
    await c.ended;
    const ms = Date.now() - started;
    assert.ok(ms >= 150 && ms < 2000, `closed after ${ms} ms`);
  } finally {
    await m.close();
  }
});

test('TCP: a removed listener stops accepting but its open connection keeps working until it ends; a missing cluster refuses', async () => {
  const up = await echoUpstream();
  const config = withTcp([tcpListener('t', dispatch([tcpChain('db')])), tcpListener('nowhere', dispatch([tcpChain('missing')]))], [cluster('db')], { db: [endpoint('127.0.0.1', up.port)] });
  const m = await managed(config);
  try {
    const refused = client(m.port('nowhere'));
    await refused.closed;
    assert.equal(refused.text(), '');
    const port = m.port('t');
    const c = client(port);
    await c.wait((t) => t === BANNER);
    const draining = m.manager.getTcp('t')!;
    assert.deepEqual(await m.apply({ ...config, tcpListeners: new Map() }), []);
    await assert.rejects(new Promise((resolve, reject) => net.connect(port, '127.0.0.1', () => resolve(undefined)).on('error', reject)), /ECONNREFUSED/);
    let drained = false;
    void draining.close().then(() => (drained = true));
    c.socket.write('still\n');
    await c.wait((t) => t.endsWith('still\n'));
    assert.equal(drained, false);
    c.socket.end();
    await c.closed;
    await draining.close();
  } finally {
    await m.close();
  }
});

test('an HTTP listener with a TCP fallback: HTTP is routed, TLS and binary bytes go to the TCP proxy at once, a silent client after the detection timeout', async () => {
  const up = await echoUpstream({ banner: false });
  const silent = await echoUpstream();
  const H = ['http/1.1', 'http/1.0', 'h2c'];
  const base = proxyConfig({
    listeners: [listener('mixed', {
      routes: { kind: 'inline', table: routeTable('in', [vhost('all', ['*'], [route('hello', directResponse(200, 'routed'))])]) },
      connections: dispatch([httpChain('http', { applicationProtocols: H }), tcpChain('tls', { transportProtocol: 'tls' })], tcpChain('other')),
    })],
    clusters: [cluster('tls'), cluster('other')],
    endpoints: { tls: [endpoint('127.0.0.1', up.port)], other: [endpoint('127.0.0.1', silent.port)] },
  });
  const m = await managed(base);
  try {
    const port = m.port('mixed');
    const body = await new Promise<string>((resolve, reject) => http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(`${res.statusCode} ${b}`));
    }).on('error', reject));
    assert.equal(body, '200 routed');
    // A ClientHello-like record: the TCP chain for TLS, decided on its first three bytes.
    const t = client(port);
    t.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, 0x01]));
    await t.wait((x) => x.length === 6, 1000);
    t.socket.destroy();
    // Binary bytes: the default chain at once. A silent client: the same, after 200 ms.
    const b = client(port);
    b.socket.write('*1\r\n');
    const started = Date.now();
    await b.wait((x) => x === `${BANNER}*1\r\n`, 1000);
    assert.ok(Date.now() - started < 150, 'binary bytes did not wait for the detection timeout');
    b.socket.destroy();
    const s = client(port);
    const t0 = Date.now();
    await s.wait((x) => x === BANNER, 2000);
    assert.ok(Date.now() - t0 >= 180, `banner after ${Date.now() - t0} ms, before the detection timeout`);
    s.socket.destroy();
  } finally {
    await m.close();
  }
});
