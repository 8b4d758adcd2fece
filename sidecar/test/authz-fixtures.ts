/**
 * Builders for authorization tests: RBAC filters in the shapes translate-authz.ts emits, a local-
 * mode inbound listener (as translate-listeners.ts builds it) carrying them, and certificates made
 * by the real `openssl` CLI for principal tests.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TypeUrl } from '@weft/api';
import { decoded, hcm, ROUTER_FILTER, type Obj } from './xds-fixtures';

const F = 'type.googleapis.com/envoy.extensions.filters.';

export const rbacHttp = (action: 'ALLOW' | 'DENY', policies: Obj): Obj => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': `${F}http.rbac.v3.RBAC`, rules: { action, policies } } });
export const rbacTcp = (action: 'ALLOW' | 'DENY', policies: Obj): Obj => ({ name: 'envoy.filters.network.rbac', typed_config: { '@type': `${F}network.rbac.v3.RBAC`, stat_prefix: 'tcp.', rules: { action, policies } } });
export const key = (ns: string, name: string, rule = 0): string => `ns[${ns}]-policy[${name}]-rule[${rule}]`;

export const ANY: Obj = { any: true };
export const paths = (...p: Obj[]): Obj => (p.length === 1 ? { url_path: { path: p[0] } } : { or_rules: { rules: p.map((x) => ({ url_path: { path: x } })) } });
export const methods = (...m: string[]): Obj => (m.length === 1 ? { header: { name: ':method', string_match: { exact: m[0] } } } : { or_rules: { rules: m.map((x) => ({ header: { name: ':method', string_match: { exact: x } } })) } });
export const and = (...rules: Obj[]): Obj => ({ and_rules: { rules } });
export const principal = (m: Obj): Obj => ({ authenticated: { principal_name: m } });

export const INBOUND_PORT = 15006;

/**
 * Local mode's inbound listener on `pod`: HTTP on 15006 routed by `x-weft-target-port` to
 * `inbound|<p>||` for each of `httpPorts` (the first without the header), a TCP chain for the PROXY
 * port `tcpPort`.
 */
export function inboundListenerXds(pod: string, httpPorts: number[], tcpPort: number, http: Obj[], tcp: Obj[]): Obj {
  const to = (p: number): Obj => ({ cluster: `inbound|${p}||`, timeout: { seconds: 0 } });
  const routes = {
    name: 'inbound',
    virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [
      ...httpPorts.map((p) => ({ name: `port-${p}`, match: { prefix: '/', headers: [{ name: 'x-weft-target-port', string_match: { exact: String(p) } }] }, route: to(p) })),
      { name: 'default', match: { prefix: '/' }, route: to(httpPorts[0]!) },
    ] }],
  };
  return decoded(TypeUrl.Listener, {
    name: 'virtualInbound',
    address: { socket_address: { address: pod, port_value: INBOUND_PORT } },
    traffic_direction: 'INBOUND',
    listener_filters: [{ name: 'envoy.filters.listener.proxy_protocol', typed_config: { '@type': `${F}listener.proxy_protocol.v3.ProxyProtocol`, allow_requests_without_proxy_protocol: true } }],
    listener_filters_timeout: { seconds: 1 },
    continue_on_listener_filters_timeout: true,
    filter_chains: [
      { name: 'http', filter_chain_match: { destination_port: { value: INBOUND_PORT } }, filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm(routes, [...http, ROUTER_FILTER]) }] },
      { name: `inbound|${tcpPort}||`, filter_chain_match: { destination_port: { value: tcpPort } }, filters: [...tcp, { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': `${F}network.tcp_proxy.v3.TcpProxy`, stat_prefix: 'tcp', cluster: `inbound|${tcpPort}||` } }] },
    ],
  });
}

export function staticClusterXds(name: string, address: string, port: number): Obj {
  return decoded(TypeUrl.Cluster, {
    name, type: 'STATIC', connect_timeout: { seconds: 1 }, lb_policy: 'ROUND_ROBIN',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
  });
}

/** PEM files made with the openssl CLI: a mesh CA, a server cert, clients with SPIFFE URI SANs, and a client of another CA. */
export interface TestPki {
  readonly dir: string;
  readonly caPem: string;
  readonly serverKey: string;
  readonly serverCert: string;
  client(name: string): { key: string; cert: string };
  cleanup(): void;
}

export function makePki(clients: Record<string, { spiffe: string; otherCa?: boolean }>): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-authz-pki-'));
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string): void => {
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/O=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  };
  const leaf = (name: string, issuer: string, san: string, usage: string): void => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=weft-test`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('mesh-ca');
  ca('other-ca');
  leaf('server', 'mesh-ca', 'URI:spiffe://cluster.local/ns/shop/sa/reviews,IP:127.0.43.1', 'serverAuth');
  for (const [name, c] of Object.entries(clients)) leaf(name, c.otherCa ? 'other-ca' : 'mesh-ca', `URI:${c.spiffe}`, 'clientAuth');
  const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
  return {
    dir,
    caPem: read('mesh-ca.pem'),
    serverKey: read('server.key'),
    serverCert: read('server.pem'),
    client: (name) => ({ key: read(`${name}.key`), cert: read(`${name}.pem`) }),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
