/**
 * The sidecar's mTLS pieces on their own: the ClientHello reader that tells mesh mTLS from app TLS
 * (fed by a real Node TLS client), TLS transport sockets from xDS (round-tripped through the
 * protos), the SPIFFE SAN check, and TLS contexts following a certificate rotation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { TypeUrl } from '@weft/api';
import { parseClientHello } from '../src/tls-client-hello';
import { checkSpiffeId, connectUpstream } from '../src/tls-originate';
import { terminateTls } from '../src/tls-terminate';
import { peerSpiffeId } from '../src/identity';
import { TlsContexts } from '../src/tls-contexts';
import { clusterTlsOf, endpointTls } from '../src/cluster-from-xds';
import { listenerChainsOf } from '../src/listener-from-xds';
import { decoded } from './xds-fixtures';
import { makeCa, StaticIdentity } from './tls-fixtures';

/** The first bytes a real TLS client sends with `alpn` and `servername`. */
async function clientHello(alpn: string[], servername?: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ALPNProtocols: alpn, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  c.on('error', () => undefined);
  const bytes = await got;
  c.destroy();
  server.close();
  return bytes;
}

test('ClientHello: the ALPN list and SNI a real client offers; incomplete records wait; junk is no ALPN', async () => {
  const hello = await clientHello(['h2', 'weft-mtls'], 'outbound_.80_._.backend.shop.svc.cluster.local');
  assert.deepEqual(parseClientHello(hello), { alpn: ['h2', 'weft-mtls'], serverName: 'outbound_.80_._.backend.shop.svc.cluster.local' });
  assert.equal(parseClientHello(hello.subarray(0, 40)), undefined);
  assert.deepEqual(parseClientHello(await clientHello([])), { alpn: [] });
  assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x02, 0x02, 0x00])), { alpn: [] });
});

const SDS = { ads: {}, resource_api_version: 'V3' };
const common = (extra: Record<string, unknown> = {}) => ({
  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: SDS }],
  ...extra,
});

test('xDS: a DownstreamTlsContext chain becomes terminate-tls; UpstreamTlsContext matches pick TLS per endpoint; unsupported TLS is NACKed', () => {
  const listener = decoded(TypeUrl.Listener, {
    name: 'in', address: { socket_address: { address: '127.0.0.1', port_value: 15006 } },
    filter_chains: [{
      name: 'mtls', filter_chain_match: { transport_protocol: 'tls', application_protocols: ['weft-mtls'] },
      transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', require_client_certificate: { value: true },
        common_tls_context: common({ alpn_protocols: ['h2', 'weft-mtls'], validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: SDS } }) } },
    }],
  });
  const chains = listenerChainsOf(listener, 'Listener "in"');
  assert.ok(chains.ok, JSON.stringify(chains));
  assert.deepEqual(chains.value.connections!.chains[0]!.filter, { kind: 'terminate-tls', tls: { certificate: 'default', validation: 'ROOTCA', alpn: ['h2', 'weft-mtls'], requireClientCertificate: true } });

  const upstream = (ctx: Record<string, unknown>) => ({ name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'outbound_.80_._.b', common_tls_context: ctx } });
  const cluster = decoded(TypeUrl.Cluster, {
    name: 'c', type: 'EDS',
    transport_socket_matches: [
      { name: 'tlsMode-weft', match: { fields: { tlsMode: { stringValue: 'weft' } } }, transport_socket: upstream(common({ alpn_protocols: ['weft-mtls'],
        combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/shop/sa/b' } }] }, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: SDS } } })) },
      { name: 'tlsMode-disabled', match: {}, transport_socket: { name: 'raw', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } } },
    ],
  });
  const t = clusterTlsOf(cluster, 'Cluster "c"');
  assert.ok(t.ok, JSON.stringify(t));
  const meshed = endpointTls(t.value, { tlsMode: 'weft' });
  assert.deepEqual(meshed, { certificate: 'default', validation: 'ROOTCA', alpn: ['weft-mtls'], sni: 'outbound_.80_._.b', expectedSans: ['spiffe://cluster.local/ns/shop/sa/b'] });
  assert.equal(endpointTls(t.value, undefined), undefined);

  const bad = clusterTlsOf(decoded(TypeUrl.Cluster, { name: 'c', transport_socket: upstream(common({ alpn_protocols: ['h2'] })) }), 'Cluster "c"');
  assert.deepEqual(bad, { ok: false, error: 'Cluster "c".transport_socket.common_tls_context.validation_context_sds_secret_config.name is required (peers are always verified)' });
  const dns = clusterTlsOf(decoded(TypeUrl.Cluster, { name: 'c', transport_socket: upstream(common({ combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'x' } }] }, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: SDS } } })) }), 'Cluster "c"');
  assert.equal(dns.ok, false);
});

test('SPIFFE SAN check: one of the expected identities, else UPSTREAM_IDENTITY_MISMATCH', () => {
  assert.equal(checkSpiffeId('URI:spiffe://cluster.local/ns/shop/sa/b', ['spiffe://cluster.local/ns/shop/sa/a', 'spiffe://cluster.local/ns/shop/sa/b']), undefined);
  const err = checkSpiffeId('URI:spiffe://cluster.local/ns/shop/sa/evil, DNS:b', ['spiffe://cluster.local/ns/shop/sa/b']) as Error & { code: string };
  assert.equal(err.code, 'UPSTREAM_IDENTITY_MISMATCH');
  assert.match(err.message, /upstream identity spiffe:\/\/cluster.local\/ns\/shop\/sa\/evil is not one of/);
  assert.equal((checkSpiffeId('DNS:b', ['spiffe://x']) as Error).message.includes('(no URI SAN)'), true);
});

test('TLS contexts: built once per certificate and trust bundle, replaced on rotation, unavailable without either', () => {
  const ca = makeCa();
  const id = new StaticIdentity(undefined);
  let trust = ca.trust();
  const contexts = new TlsContexts({ identity: id, trustBundles: () => trust });
  assert.equal((contexts.context('ROOTCA') as Error).message, 'no workload certificate yet');
  id.set(ca.leaf('shop', 'a'));
  const first = contexts.context('ROOTCA');
  assert.ok(!(first instanceof Error));
  assert.equal(contexts.context('ROOTCA'), first, 'cached: not rebuilt per connection');
  id.set(ca.leaf('shop', 'a'));
  const rotated = contexts.context('ROOTCA');
  assert.notEqual(rotated, first);
  trust = makeCa('other').trust();
  assert.notEqual(contexts.context('ROOTCA'), rotated);
  assert.match((contexts.context('NOPE') as Error).message, /no trust bundle NOPE/);
  contexts.close();
});

test('termination and origination over real sockets: the peer SPIFFE id, session resumption, a wrong identity, a client without a certificate', async () => {
  const ca = makeCa();
  const server = new TlsContexts({ identity: new StaticIdentity(ca.leaf('shop', 'backend')), trustBundles: () => ca.trust() });
  const client = new TlsContexts({ identity: new StaticIdentity(ca.leaf('shop', 'frontend')), trustBundles: () => ca.trust() });
  const refusals: string[] = [];
  const peers: (string | undefined)[] = [];
  const spec = { certificate: 'default', validation: 'ROOTCA', requireClientCertificate: true, alpn: ['h2', 'http/1.1', 'weft-mtls'] };
  const listener = net.createServer((s) => {
    s.once('data', (head: Buffer) => {
      s.pause();
      terminateTls(s, head, spec, server, (secure) => {
        peers.push(peerSpiffeId(secure));
        secure.end('hello');
      }, (e) => refusals.push(e.reason));
    });
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  const port = (listener.address() as net.AddressInfo).port;
  const tlsSpec = { certificate: 'default', validation: 'ROOTCA', expectedSans: ['spiffe://cluster.local/ns/shop/sa/backend'], alpn: ['weft-mtls'] };
  const once = (contexts: TlsContexts, expected = tlsSpec): Promise<{ text: string; reused: boolean } | Error> => new Promise((resolve) => {
    const { socket } = connectUpstream({ address: '127.0.0.1', port, tls: expected }, contexts, 'tcp');
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('error', (e) => resolve(e));
    socket.on('end', () => {
      resolve({ text, reused: (socket as tls.TLSSocket).isSessionReused() });
      socket.destroy();
    });
  });
  assert.deepEqual(await once(client), { text: 'hello', reused: false });
  assert.deepEqual(await once(client), { text: 'hello', reused: true }, 'the second connection resumes the session');
  assert.deepEqual(peers, ['spiffe://cluster.local/ns/shop/sa/frontend', 'spiffe://cluster.local/ns/shop/sa/frontend']);
  const wrong = await once(client, { ...tlsSpec, expectedSans: ['spiffe://cluster.local/ns/shop/sa/other'] });
  assert.equal((wrong as Error & { code: string }).code, 'UPSTREAM_IDENTITY_MISMATCH');
  // A client without a certificate: plaintext is all it can do, so it is refused as such upstream;
  // here, a bare TLS client offering the mesh ALPN without a certificate.
  const bare = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['weft-mtls'], ca: ca.caPem, checkServerIdentity: () => undefined });
    s.on('data', () => resolve('served'));
    s.on('error', () => resolve('refused'));
    s.on('close', () => resolve('refused'));
    setTimeout(() => s.destroy(), 2000);
  });
  assert.equal(bare, 'refused');
  await eventuallyTrue(() => refusals.includes('no-client-certificate'));
  await new Promise((r) => listener.close(r));
  server.close();
  client.close();
});

async function eventuallyTrue(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('HTTP/2 over a terminated connection: ALPN h2, and peerSpiffeId reads the client identity on session.socket', async () => {
  const ca = makeCa();
  const server = new TlsContexts({ identity: new StaticIdentity(ca.leaf('shop', 'backend')), trustBundles: () => ca.trust() });
  const client = new TlsContexts({ identity: new StaticIdentity(ca.leaf('shop', 'frontend')), trustBundles: () => ca.trust() });
  const h2 = http2.createServer();
  const seen: (string | undefined)[] = [];
  h2.on('stream', (stream) => {
    seen.push(peerSpiffeId(stream.session!.socket));
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const spec = { certificate: 'default', validation: 'ROOTCA', requireClientCertificate: true, alpn: ['h2', 'http/1.1', 'weft-mtls'] };
  const listener = net.createServer({ allowHalfOpen: true }, (s) => {
    s.once('data', (head: Buffer) => {
      s.pause();
      terminateTls(s, head, spec, server, (secure) => {
        assert.equal(secure.alpnProtocol, 'h2');
        secure.allowHalfOpen = false; // as the listener's serveHttp does for HTTP/2 (server-lifecycle.ts)
        h2.emit('connection', secure);
      }, () => undefined);
    });
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  const port = (listener.address() as net.AddressInfo).port;
  const tlsSpec = { certificate: 'default', validation: 'ROOTCA', expectedSans: ['spiffe://cluster.local/ns/shop/sa/backend'], alpn: ['weft-mtls'] };
  const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => connectUpstream({ address: '127.0.0.1', port, tls: tlsSpec }, client, 'h2').socket });
  const body = await new Promise<string>((resolve, reject) => {
    const req = session.request({ ':path': '/' });
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => resolve(text));
    req.on('error', reject);
    req.end();
  });
  assert.equal(body, 'ok');
  assert.deepEqual(seen, ['spiffe://cluster.local/ns/shop/sa/frontend']);
  session.destroy();
  await new Promise((r) => listener.close(r));
  h2.close();
});
