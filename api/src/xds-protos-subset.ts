/**
 * The sidecar's own protobufjs Root: only the xDS message types it decodes and encodes, and what
 * they reference (`SIDECAR_XDS_TYPES` and their closure, about 360 of the 520 types the control
 * plane loads), built from a JSON descriptor instead of the `.proto` text.
 *
 * Why: parsing Envoy's `.proto` files at start cost the sidecar about 7 MB of its idle RSS (the
 * parser's garbage grows V8's young generation for good, and the texts stay referenced); loading
 * the descriptor costs a fraction of that (docs/performance.md, memory).
 *
 * Where the descriptor comes from: `npm run build` runs this file after `tsc -b`, which derives it
 * from the protos in `@grpc/grpc-js-xds` (the same files `xdsRoot()` parses; nothing is copied
 * into the repository) and writes `api/dist/xds-sidecar-types.json` with the versions it was
 * made from. When that file is missing, was made from other versions of `@grpc/grpc-js-xds` or
 * protobufjs, or lacks a type, `sidecarXdsRoot()` derives the same subset in process from
 * `xdsRoot()` instead: identical decoding, only the memory saving is lost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs/light';
import { xdsRoot } from './xds-protos';

/**
 * What the sidecar decodes or encodes: the ADS messages, the resource types it subscribes to, and
 * every type it expects inside an `Any` of those (filters, load-balancing policies, protocol
 * options). An `Any` of any other type is not decoded; `unpackAny` still names its type.
 */
export const SIDECAR_XDS_TYPES: readonly string[] = [
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
  'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  'envoy.config.listener.v3.Listener',
  'envoy.config.route.v3.RouteConfiguration',
  'envoy.config.cluster.v3.Cluster',
  'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'envoy.extensions.transport_sockets.tls.v3.Secret',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.http.router.v3.Router',
  'envoy.extensions.filters.http.fault.v3.HTTPFault',
  'envoy.extensions.filters.http.rbac.v3.RBAC',
  'envoy.extensions.filters.network.rbac.v3.RBAC',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  'envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  'envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol',
  'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
  'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  'envoy.config.route.v3.FilterConfig',
  'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
  'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
  'envoy.extensions.load_balancing_policies.random.v3.Random',
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  'xds.type.v3.TypedStruct',
  // Mesh mTLS: chain and cluster transport sockets.
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer',
  // Tracing: the HCM's `tracing.provider` (docs/tracing.md).
  'envoy.config.trace.v3.OpenTelemetryConfig',
];

/** The descriptor file, written by `npm run build` beside the compiled api (dist/). */
export const SIDECAR_DESCRIPTOR_PATH = path.join(__dirname, '..', 'xds-sidecar-types.json');

interface Descriptor {
  /** The versions the descriptor was derived from; another version means derive again. */
  readonly source: Readonly<Record<string, string>>;
  readonly types: readonly string[];
  readonly root: protobuf.INamespace;
}

function sourceVersions(): Record<string, string> {
  const version = (pkg: string): string => (JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  return { '@grpc/grpc-js-xds': version('@grpc/grpc-js-xds'), protobufjs: version('protobufjs') };
}

/**
 * A JSON descriptor holding `types` and every type and enum they reference, transitively, taken
 * from `root` (by default the full `xdsRoot()`).
 */
export function subsetDescriptor(types: readonly string[], root: protobuf.Root = xdsRoot()): protobuf.INamespace {
  const keep = new Set<protobuf.ReflectionObject>();
  const visit = (o: protobuf.ReflectionObject | null): void => {
    if (!o || keep.has(o)) return;
    keep.add(o);
    if (o instanceof protobuf.Type) for (const f of o.fieldsArray) visit(f.resolve().resolvedType);
  };
  for (const name of types) visit(root.lookupTypeOrEnum(name));

  // Every kept object, with the namespaces and enclosing messages on its path; an enclosing
  // message is kept whole (its fields), but of its nested members only the kept ones.
  const out: protobuf.INamespace = { nested: {} };
  const place = (o: protobuf.ReflectionObject): Record<string, any> => {
    const parent = o.parent && o.parent !== root ? place(o.parent) : out;
    parent.nested ??= {};
    if (!parent.nested[o.name]) {
      let json: Record<string, any> = {};
      if (o instanceof protobuf.Type) {
        json = o.toJSON({ keepComments: false }) as Record<string, any>;
        delete json.nested;
      } else if (o instanceof protobuf.Enum) {
        json = o.toJSON({ keepComments: false }) as Record<string, any>;
      }
      parent.nested[o.name] = json;
    }
    return parent.nested[o.name];
  };
  for (const o of keep) place(o);
  return out;
}

/** Writes the descriptor file (`npm run build` does, after `tsc -b`). */
export function writeSidecarDescriptor(file = SIDECAR_DESCRIPTOR_PATH): void {
  const d: Descriptor = { source: sourceVersions(), types: [...SIDECAR_XDS_TYPES], root: subsetDescriptor(SIDECAR_XDS_TYPES) };
  fs.writeFileSync(file, JSON.stringify(d));
}

/** The descriptor file's root when it is there and made for these versions and types, else undefined. */
export function readSidecarDescriptor(file: string): protobuf.INamespace | undefined {
  let d: Partial<Descriptor>;
  try {
    d = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Descriptor>;
  } catch {
    return undefined;
  }
  const now = sourceVersions();
  const fresh = Object.keys(now).every((k) => d.source?.[k] === now[k]) && SIDECAR_XDS_TYPES.every((t) => d.types?.includes(t));
  return fresh && d.root ? d.root : undefined;
}

let root: protobuf.Root | undefined;
let origin: 'descriptor' | 'derived' | undefined;

/**
 * The sidecar's Root (loaded once, synchronously): from the descriptor file when it is fresh,
 * else derived from `xdsRoot()` (same types; see the module comment).
 */
export function sidecarXdsRoot(): protobuf.Root {
  if (root) return root;
  const fromFile = readSidecarDescriptor(SIDECAR_DESCRIPTOR_PATH);
  origin = fromFile ? 'descriptor' : 'derived';
  const r = protobuf.Root.fromJSON(fromFile ?? subsetDescriptor(SIDECAR_XDS_TYPES));
  r.resolveAll();
  root = r;
  return r;
}

/** Where `sidecarXdsRoot()` came from, once loaded (for tests and the performance notes). */
export function sidecarXdsRootOrigin(): 'descriptor' | 'derived' | undefined {
  return origin;
}

if (require.main === module) writeSidecarDescriptor();
