/**
 * The Envoy TLS resources mesh mTLS is made of (docs/protocols.md "mTLS"): the inbound chains'
 * `DownstreamTlsContext` and the clusters' `UpstreamTlsContext` in `transport_socket_matches`
 * (auto mTLS: endpoints whose pod has a sidecar with an identity carry `tlsMode: weft`).
 * Certificates travel by SDS name, as Istio's: `default` (the workload certificate, issued to the
 * sidecar itself) and `ROOTCA` (the trust bundle, an SDS `Secret` from the control plane).
 */

type Obj = Record<string, unknown>;

const ADS = { ads: {}, resource_api_version: 'V3' };
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.';
export const CERTIFICATE_SDS = 'default';
export const ROOTCA_SDS = 'ROOTCA';
/** The ALPN protocol sidecars offer on mesh mTLS (Istio's `istio`): how the inbound listener tells it from app TLS. */
export const MESH_MTLS_ALPN = 'weft-mtls';
/** The transport_protocol a stream has once a `terminate-tls` chain decrypted it (Weft's re-dispatch). */
export const MESH_MTLS_TRANSPORT = 'weft-mtls';
/** Endpoint metadata Envoy matches transports on, and Weft's value (Istio's is `istio`). */
export const TRANSPORT_MATCH_NS = 'envoy.transport_socket_match';
export const TLS_MODE = { key: 'tlsMode', value: 'weft' };
/** Local mode has one trust domain (SPEC.md: `cluster.local` unless WEFT_TRUST_DOMAIN says otherwise). */
export const TRUST_DOMAIN = 'cluster.local';

export function spiffeId(namespace: string, serviceAccount: string, trustDomain = TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

function common(extra: Obj): Obj {
  return {
    tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
    tls_certificate_sds_secret_configs: [{ name: CERTIFICATE_SDS, sds_config: ADS }],
    ...extra,
  };
}

/** An inbound chain's transport socket: mesh mTLS with a required, verified client certificate. */
export function downstreamMtls(): Obj {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': `${TLS}DownstreamTlsContext`,
      require_client_certificate: { value: true },
      common_tls_context: common({
        alpn_protocols: ['h2', 'http/1.1', MESH_MTLS_ALPN],
        validation_context_sds_secret_config: { name: ROOTCA_SDS, sds_config: ADS },
      }),
    },
  };
}

/**
 * A cluster's `transport_socket_matches`: endpoints with `tlsMode: weft` get mTLS verifying one of
 * `sans` (the destination's service accounts), all others plaintext.
 */
export function autoMtlsMatches(sni: string, sans: readonly string[]): Obj[] {
  return [
    {
      name: 'tlsMode-weft',
      match: { fields: { [TLS_MODE.key]: { stringValue: TLS_MODE.value } } },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': `${TLS}UpstreamTlsContext`,
          sni,
          common_tls_context: common({
            alpn_protocols: [MESH_MTLS_ALPN],
            combined_validation_context: {
              default_validation_context: { match_typed_subject_alt_names: sans.map((s) => ({ san_type: 'URI', matcher: { exact: s } })) },
              validation_context_sds_secret_config: { name: ROOTCA_SDS, sds_config: ADS },
            },
          }),
        },
      },
    },
    {
      name: 'tlsMode-disabled',
      match: {},
      transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } },
    },
  ];
}

/** The endpoint metadata that selects `autoMtlsMatches`' mTLS entry. */
export function tlsModeMetadata(): Obj {
  return { [TRANSPORT_MATCH_NS]: { fields: { [TLS_MODE.key]: { stringValue: TLS_MODE.value } } } };
}
