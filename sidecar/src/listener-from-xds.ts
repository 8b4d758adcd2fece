/**
 * The connection-level parts of an Envoy `Listener` → typed values (config-from-xds.ts calls
 * `listenerChainsOf` from `listener()`): filter chains and their matches, TCP proxies, listener
 * filters and the detection timeout. Returns a value or an error string (the NACK's detail);
 * anything whose meaning this sidecar cannot honour is an error. docs/protocols.md is the contract.
 */
import type { ChainMatch, ConnectionDispatch, FilterChain, TcpProxy } from './config';
import { DEFAULT_TCP_IDLE_TIMEOUT_MS } from './forward-tcp';
import type { Parsed } from './cluster-from-xds';
import type { RbacEngine } from './authz-engine';
import { NETWORK_RBAC_TYPE, rbacEngineOf } from './authz-from-xds';
import { downstreamTlsOf } from './tls-from-xds';

type Obj = Record<string, any>;

const T = 'type.googleapis.com/envoy.extensions.filters.';
export const TCP_PROXY_TYPE = `${T}network.tcp_proxy.v3.TcpProxy`;
export const HCM_TYPE = `${T}network.http_connection_manager.v3.HttpConnectionManager`;
export const ORIGINAL_DST_FILTER_TYPE = `${T}listener.original_dst.v3.OriginalDst`;
export const PROXY_PROTOCOL_FILTER_TYPE = `${T}listener.proxy_protocol.v3.ProxyProtocol`;
/** Detection is built into the sidecar: these filters are accepted and change nothing. */
const INSPECTORS = new Set([`${T}listener.http_inspector.v3.HttpInspector`, `${T}listener.tls_inspector.v3.TlsInspector`]);

/** Envoy's `listener_filters_timeout` when a listener with filter chains sets none. */
export const ENVOY_LISTENER_FILTERS_TIMEOUT_MS = 15_000;

/** What a listener's chains come to. `hcm`: the HTTP connection manager every HTTP chain shares. */
export interface ListenerChains {
  readonly hcm?: { readonly config: Obj; readonly at: string };
  /** Absent: one unconditional HTTP chain and nothing else (every connection is HTTP). */
  readonly connections?: ConnectionDispatch;
}

class Bad extends Error {}
const bad = (why: string): never => { throw new Bad(why); };

/** A decoded proto field that holds something other than its default. */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

function durationMs(d: Obj): number {
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}

export function listenerChainsOf(o: Obj, at: string): Parsed<ListenerChains> {
  try {
    return { ok: true, value: chains(o, at) };
  } catch (err) {
    if (err instanceof Bad) return { ok: false, error: err.message };
    throw err;
  }
}

function chains(o: Obj, at: string): ListenerChains {
  if (o.bind_to_port && o.bind_to_port.value === false) bad(`${at}: bind_to_port false is not supported by this sidecar (use filter_chain_match.prefix_ranges on the capturing listener)`);
  if (o.use_original_dst?.value === true) bad(`${at}: use_original_dst is not supported by this sidecar (use filter_chain_match.prefix_ranges on the capturing listener)`);
  if (isSet(o.filter_chain_matcher)) bad(`${at}: filter_chain_matcher is not supported by this sidecar version (use filter_chain_match)`);
  let originalDst = false;
  let proxyProtocol = false;
  (o.listener_filters ?? []).forEach((f: Obj, i: number) => {
    const fat = `${at}.listener_filters[${i}]`;
    if (isSet(f.filter_disabled)) bad(`${fat}: filter_disabled is not supported by this sidecar version`);
    const type = f.typed_config?.['@type'];
    if (type === ORIGINAL_DST_FILTER_TYPE) originalDst = true;
    else if (type === PROXY_PROTOCOL_FILTER_TYPE) {
      const c = f.typed_config;
      if (!c.allow_requests_without_proxy_protocol) bad(`${fat}: the proxy_protocol filter needs allow_requests_without_proxy_protocol in this sidecar version`);
      if (isSet(c.rules) || isSet(c.pass_through_tlvs) || isSet(c.disallowed_versions)) bad(`${fat}: proxy_protocol rules, pass_through_tlvs and disallowed_versions are not supported by this sidecar version`);
      proxyProtocol = true;
    } else if (!INSPECTORS.has(type)) bad(`${fat}: listener filter ${f.name || type} is not supported by this sidecar`);
  });

  const list: FilterChain[] = [];
  let hcm: ListenerChains['hcm'];
  const chain = (c: Obj, cat: string): FilterChain => {
    const tls = downstreamTlsOf(c.transport_socket, cat);
    if (!tls.ok) return bad(tls.error);
    const all: Obj[] = c.filters ?? [];
    if (tls.value) {
      // Mesh mTLS is terminated, then the decrypted stream is dispatched again (listener-dispatch.ts).
      if (all.length) bad(`${cat}: a chain with a DownstreamTlsContext terminates mesh mTLS and re-dispatches the stream: it takes no network filters in this sidecar`);
      return { name: String(c.name ?? ''), match: chainMatch(c.filter_chain_match ?? {}, `${cat}.filter_chain_match`), filter: { kind: 'terminate-tls', tls: tls.value } };
    }
    // Network RBAC filters (authorization, authz-from-xds.ts) may come before a TCP proxy.
    const rbacs = all.filter((f, i) => f.typed_config?.['@type'] === NETWORK_RBAC_TYPE && all.slice(0, i).every((g) => g.typed_config?.['@type'] === NETWORK_RBAC_TYPE));
    const filters = all.slice(rbacs.length);
    const tc = filters[0]?.typed_config;
    if (filters.length !== 1) bad(`${cat}: exactly one network filter (http_connection_manager or tcp_proxy) is supported${rbacs.length ? ' after the RBAC filters' : ''}, got ${filters.length}`);
    const name = String(c.name ?? '');
    const match = chainMatch(c.filter_chain_match ?? {}, `${cat}.filter_chain_match`);
    if (tc?.['@type'] === TCP_PROXY_TYPE) {
      const authz = rbacs.map((f, i) => {
        const e = rbacEngineOf(f.typed_config, `${cat}.filters[${i}]`);
        return e.ok ? e.value : bad(e.error);
      }).filter((e): e is RbacEngine => e !== undefined);
      return { name, match, filter: { kind: 'tcp', proxy: tcpProxy(tc, `${cat}.filters[${rbacs.length}]`), ...(rbacs.length ? { authz } : {}) } };
    }
    if (rbacs.length) bad(`${cat}: network RBAC before the HTTP connection manager is not supported by this sidecar (use envoy.filters.http.rbac)`);
    if (tc?.['@type'] !== HCM_TYPE) return bad(`${cat}: network filter ${filters[0]?.name || tc?.['@type']} is not supported by this sidecar`);
    if (!hcm) hcm = { config: tc, at: cat };
    else if (JSON.stringify(tc) !== JSON.stringify(hcm.config)) {
      bad(`${cat}: this sidecar serves one HTTP connection manager per listener; every HTTP filter chain must carry the same one as ${hcm.at}`);
    }
    return { name, match, filter: { kind: 'http' } };
  };
  (o.filter_chains ?? []).forEach((c: Obj, i: number) => list.push(chain(c, `${at}.filter_chains[${i}]`)));
  const defaultChain = isSet(o.default_filter_chain) ? chain(o.default_filter_chain, `${at}.default_filter_chain`) : undefined;
  if (!list.length && !defaultChain) bad(`${at}: a filter chain is required`);

  const timeout = o.listener_filters_timeout ? durationMs(o.listener_filters_timeout) : ENVOY_LISTENER_FILTERS_TIMEOUT_MS;
  const only = list[0];
  const plainHttp = list.length === 1 && !defaultChain && !originalDst && !proxyProtocol && only!.filter.kind === 'http' && isEmpty(only!.match);
  if (plainHttp) return { hcm: hcm! };
  return {
    ...(hcm ? { hcm } : {}),
    connections: {
      chains: list,
      ...(defaultChain ? { defaultChain } : {}),
      originalDst,
      proxyProtocol,
      detectTimeoutMs: timeout > 0 ? timeout : ENVOY_LISTENER_FILTERS_TIMEOUT_MS,
      fallbackOnTimeout: o.continue_on_listener_filters_timeout === true,
    },
  };
}

function isEmpty(m: ChainMatch): boolean {
  return m.destinationPort === undefined && !m.prefixRanges?.length && m.transportProtocol === undefined && !m.applicationProtocols?.length;
}

const UNSUPPORTED_MATCH = ['server_names', 'source_prefix_ranges', 'source_ports', 'direct_source_prefix_ranges', 'address_suffix', 'suffix_len'];

function chainMatch(m: Obj, at: string): ChainMatch {
  for (const f of UNSUPPORTED_MATCH) if (isSet(m[f]) && !(f === 'suffix_len' && m[f]?.value === 0)) bad(`${at}: ${f} is not supported by this sidecar version`);
  if (m.source_type && m.source_type !== 'ANY') bad(`${at}: source_type ${m.source_type} is not supported by this sidecar version`);
  const out: { -readonly [K in keyof ChainMatch]: ChainMatch[K] } = {};
  if (m.destination_port) {
    const port = Number(m.destination_port.value ?? 0);
    if (!(port >= 1 && port <= 65535)) bad(`${at}.destination_port: must be between 1 and 65535`);
    out.destinationPort = port;
  }
  if (isSet(m.prefix_ranges)) {
    out.prefixRanges = (m.prefix_ranges as Obj[]).map((r, i) => {
      const address = String(r.address_prefix ?? '');
      const v6 = address.includes(':');
      const prefixLen = r.prefix_len ? Number(r.prefix_len.value ?? 0) : v6 ? 128 : 32;
      if (!/^[0-9a-fA-F:.]+$/.test(address) || !(prefixLen >= 0 && prefixLen <= (v6 ? 128 : 32))) bad(`${at}.prefix_ranges[${i}]: ${address}/${prefixLen} is not a CIDR range`);
      return { address, prefixLen };
    });
  }
  if (isSet(m.transport_protocol)) out.transportProtocol = String(m.transport_protocol);
  if (isSet(m.application_protocols)) out.applicationProtocols = (m.application_protocols as unknown[]).map(String);
  return out;
}

const UNSUPPORTED_TCP = ['on_demand', 'metadata_match', 'downstream_idle_timeout', 'upstream_idle_timeout', 'tunneling_config', 'max_downstream_connection_duration', 'access_log', 'hash_policy', 'access_log_flush_interval', 'access_log_options', 'backoff_options'];

/** `envoy.filters.network.tcp_proxy`: `cluster` or `weighted_clusters`, `idle_timeout`. */
function tcpProxy(c: Obj, at: string): TcpProxy {
  for (const f of UNSUPPORTED_TCP) if (isSet(c[f])) bad(`${at}: tcp_proxy ${f} is not supported by this sidecar version`);
  if (c.max_connect_attempts && Number(c.max_connect_attempts.value) > 1) bad(`${at}: tcp_proxy max_connect_attempts above 1 is not supported by this sidecar version`);
  let target: TcpProxy['target'];
  if (isSet(c.cluster)) target = { kind: 'cluster', cluster: String(c.cluster) };
  else if (isSet(c.weighted_clusters?.clusters)) {
    const clusters = (c.weighted_clusters.clusters as Obj[]).map((w, i) => {
      if (isSet(w.metadata_match)) bad(`${at}.weighted_clusters.clusters[${i}]: metadata_match is not supported by this sidecar version`);
      return { cluster: String(w.name ?? ''), weight: Number(w.weight ?? 0) };
    });
    const totalWeight = clusters.reduce((s, w) => s + w.weight, 0);
    if (totalWeight <= 0) bad(`${at}.weighted_clusters: the weights must add up to more than 0`);
    target = { kind: 'weighted', clusters, totalWeight };
  } else return bad(`${at}: tcp_proxy needs cluster or weighted_clusters`);
  // Unset: Envoy's 1 h; 0s turns it off.
  const idleTimeoutMs = c.idle_timeout ? durationMs(c.idle_timeout) : DEFAULT_TCP_IDLE_TIMEOUT_MS;
  return { statPrefix: String(c.stat_prefix || 'tcp'), target, idleTimeoutMs };
}
