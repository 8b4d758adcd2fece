/**
 * Envoy xDS v3 protos, loaded from the copy that ships inside `@grpc/grpc-js-xds` (its `deps/`
 * folder). We never copy protos into this repository: SPEC.md, "xDS".
 *
 * Two views of the same files:
 *  - `adsServiceDefinition()`: the gRPC service definition (proto-loader) for client and server;
 *  - `xdsRoot()`: a protobufjs Root that encodes and decodes the resources carried in `Any`.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as protobuf from 'protobufjs';
import * as protoLoader from '@grpc/proto-loader';

/** The folders inside `@grpc/grpc-js-xds/deps` that imports resolve against. */
export function protoIncludeDirs(): string[] {
  const pkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const deps = path.join(pkg, 'deps');
  return [
    path.join(deps, 'envoy-api'),
    path.join(deps, 'xds'),
    path.join(deps, 'googleapis'),
    path.join(deps, 'protoc-gen-validate'),
  ];
}

/** Every proto file a Weft resource may reference. */
export const RESOURCE_PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs Root for every resource type (loaded once, synchronously). */
export function xdsRoot(): protobuf.Root {
  if (root) return root;
  const dirs = protoIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    // google/protobuf/*.proto are bundled with protobufjs itself.
    return target;
  };
  r.loadSync([...RESOURCE_PROTO_FILES], { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

let definition: protoLoader.PackageDefinition | undefined;

/** The proto-loader package definition holding `AggregatedDiscoveryService`. */
export function adsPackageDefinition(): protoLoader.PackageDefinition {
  definition ??= protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: protoIncludeDirs(),
  });
  return definition;
}

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
