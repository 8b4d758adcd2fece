/**
 * Envoy's TLS transport sockets → typed values: `DownstreamTlsContext` on a listener's filter chain
 * (listener-from-xds.ts) and `UpstreamTlsContext` on a cluster, directly or in
 * `transport_socket_matches` (config-from-xds.ts). Certificates come by SDS name only (Istio's
 * `default` and `ROOTCA`): inline keys, other validation rules and other TLS features are NACKed
 * rather than silently ignored.
 */
import type { DownstreamTls, UpstreamTls } from './config';
import type { Parsed } from './cluster-from-xds';

type Obj = Record<string, any>;

const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.';
export const DOWNSTREAM_TLS_TYPE = `${TLS}DownstreamTlsContext`;
export const UPSTREAM_TLS_TYPE = `${TLS}UpstreamTlsContext`;
export const RAW_BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

const fail = (error: string): Parsed<never> => ({ ok: false, error });

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

const COMMON_FIELDS = new Set(['tls_params', 'alpn_protocols', 'tls_certificate_sds_secret_configs', 'validation_context_sds_secret_config']);

/** The SDS names and ALPN of a `CommonTlsContext`. */
function common(c: Obj, at: string): Parsed<{ certificate: string; validation: string; alpn: string[] }> {
  // Keys naming a oneof (`validation_context_type`) are protobufjs's virtual fields, not data.
  for (const [k, v] of Object.entries(c)) if (!COMMON_FIELDS.has(k) && !k.endsWith('_type') && isSet(v)) return fail(`${at}.common_tls_context.${k} is not supported by this sidecar (SDS names only)`);
  const certs: Obj[] = c.tls_certificate_sds_secret_configs ?? [];
  if (certs.length !== 1 || !certs[0]!.name) return fail(`${at}.common_tls_context: exactly one tls_certificate_sds_secret_configs entry with a name is required`);
  const validation = c.validation_context_sds_secret_config?.name;
  if (!validation) return fail(`${at}.common_tls_context.validation_context_sds_secret_config.name is required (peers are always verified)`);
  const min = c.tls_params?.tls_minimum_protocol_version;
  if (min && min !== 'TLS_AUTO' && min !== 'TLSv1_2' && min !== 'TLSv1_3') return fail(`${at}: tls_minimum_protocol_version ${min} is below this sidecar's TLS 1.2 minimum`);
  return { ok: true, value: { certificate: String(certs[0]!.name), validation: String(validation), alpn: (c.alpn_protocols ?? []).map(String) } };
}

/** A chain's `transport_socket`; `undefined` for none or raw_buffer. */
export function downstreamTlsOf(ts: Obj | undefined, at: string): Parsed<DownstreamTls | undefined> {
  const tc = ts?.typed_config;
  if (!isSet(ts) || !tc || tc['@type'] === RAW_BUFFER_TYPE) return { ok: true, value: undefined };
  if (tc['@type'] !== DOWNSTREAM_TLS_TYPE) return fail(`${at}.transport_socket: ${tc['@type']} is not supported (DownstreamTlsContext or raw_buffer)`);
  for (const f of ['session_ticket_keys', 'session_ticket_keys_sds_secret_config', 'ocsp_staple_policy', 'require_sni', 'full_scan_certs_on_sni_mismatch']) {
    if (isSet(tc[f])) return fail(`${at}.transport_socket: ${f} is not supported by this sidecar`);
  }
  const c = common(tc.common_tls_context ?? {}, `${at}.transport_socket`);
  if (!c.ok) return c;
  return { ok: true, value: { ...c.value, requireClientCertificate: tc.require_client_certificate?.value === true } };
}

/** A cluster's `transport_socket` (or one of its `transport_socket_matches`); `undefined` for none or raw_buffer. */
export function upstreamTlsOf(ts: Obj | undefined, at: string): Parsed<UpstreamTls | undefined> {
  const tc = ts?.typed_config;
  if (!isSet(ts) || !tc || tc['@type'] === RAW_BUFFER_TYPE) return { ok: true, value: undefined };
  if (tc['@type'] !== UPSTREAM_TLS_TYPE) return fail(`${at}.transport_socket: ${tc['@type']} is not supported (UpstreamTlsContext or raw_buffer)`);
  for (const f of ['allow_renegotiation', 'max_session_keys', 'enforce_rsa_key_usage']) if (isSet(tc[f])) return fail(`${at}.transport_socket: ${f} is not supported by this sidecar`);
  const ctx: Obj = { ...(tc.common_tls_context ?? {}) };
  // Envoy's place for SAN checks when validation comes by SDS: combined_validation_context's default.
  const combined = ctx.combined_validation_context;
  delete ctx.combined_validation_context;
  let sans: string[] = [];
  if (combined) {
    ctx.validation_context_sds_secret_config = combined.validation_context_sds_secret_config;
    const matchers: Obj[] = combined.default_validation_context?.match_typed_subject_alt_names ?? [];
    for (const [i, m] of matchers.entries()) {
      if (m.san_type !== 'URI' || m.matcher?.exact === undefined) return fail(`${at}.transport_socket: match_typed_subject_alt_names[${i}] must be a URI exact match`);
      sans.push(String(m.matcher.exact));
    }
  }
  const c = common(ctx, `${at}.transport_socket`);
  if (!c.ok) return c;
  sans = [...new Set(sans)];
  return { ok: true, value: { ...c.value, ...(tc.sni ? { sni: String(tc.sni) } : {}), expectedSans: sans } };
}
