/** Type URLs of the resources Weft serves, and helpers to pack and unpack them into `Any`. */
import type * as protobuf from 'protobufjs';
import { xdsRoot } from './xds-protos';

export const TYPE_PREFIX = 'type.googleapis.com/';

export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  HttpConnectionManager:
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  Router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  HttpFault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
} as const;

export type ResourceTypeUrl =
  | typeof TypeUrl.Listener
  | typeof TypeUrl.RouteConfiguration
  | typeof TypeUrl.Cluster
  | typeof TypeUrl.ClusterLoadAssignment
  | typeof TypeUrl.Secret;

/** The order a proxy should apply resource types in (Envoy's: CDS, EDS, LDS, RDS). */
export const RESOURCE_TYPES: readonly ResourceTypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];

export function shortTypeName(typeUrl: string): string {
  const full = typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl;
  return full.slice(full.lastIndexOf('.') + 1);
}

/** A packed `google.protobuf.Any` as our ADS messages carry it. */
export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

const typeCache = new Map<string, protobuf.Type>();

export function messageType(typeUrl: string): protobuf.Type {
  let t = typeCache.get(typeUrl);
  if (!t) {
    const name = typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl;
    t = xdsRoot().lookupType(name);
    typeCache.set(typeUrl, t);
  }
  return t;
}

/**
 * Encodes a plain object (proto field names, snake_case) as the given type. Nested `Any` fields
 * are written as `{ '@type': url, ...fields }`. Throws when the object does not fit the schema.
 */
export function encodeResource(typeUrl: string, object: Record<string, unknown>): Buffer {
  const t = messageType(typeUrl);
  const unknown = unknownFields(t, object, '');
  if (unknown.length) throw new Error(`${shortTypeName(typeUrl)}: unknown field ${unknown.join(', ')}`);
  const message = t.fromObject(object);
  const invalid = t.verify(message);
  if (invalid) throw new Error(`${shortTypeName(typeUrl)}: ${invalid}`);
  return Buffer.from(t.encode(message).finish());
}

export function packAny(typeUrl: string, object: Record<string, unknown>): AnyMessage {
  return { type_url: typeUrl, value: encodeResource(typeUrl, object) };
}

/**
 * Decodes an `Any` into a plain object with snake_case field names, enums as strings,
 * 64-bit numbers as strings, and nested `Any`s expanded to `{ '@type': url, ...fields }`.
 * Unknown fields are skipped (a newer control plane must not break an older proxy).
 */
export function unpackAny(any: AnyMessage): Record<string, unknown> {
  const t = messageType(any.type_url);
  const message = t.decode(any.value);
  return t.toObject(message, { enums: String, longs: String, defaults: false, arrays: true, oneofs: true, json: true });
}

/**
 * Field paths in `object` that `type` does not have. protobufjs drops them silently, which hides
 * translation mistakes (a misspelt or wrongly cased field simply vanishes from the wire).
 */
function unknownFields(type: protobuf.Type, object: unknown, path: string): string[] {
  if (object === null || typeof object !== 'object' || Array.isArray(object) || Buffer.isBuffer(object)) return [];
  const out: string[] = [];
  let fields = type;
  let entries = Object.entries(object as Record<string, unknown>);
  if (type.fullName === '.google.protobuf.Any') {
    const url = (object as Record<string, unknown>)['@type'];
    if (typeof url !== 'string') return [];
    fields = messageType(url);
    entries = entries.filter(([k]) => k !== '@type');
  }
  for (const [key, value] of entries) {
    const field = fields.fields[key];
    const at = path ? `${path}.${key}` : key;
    if (!field) {
      out.push(at);
      continue;
    }
    const resolved = field.resolve().resolvedType;
    if (!(resolved instanceof Object) || !('fields' in resolved)) continue;
    const child = resolved as protobuf.Type;
    if (field.map) for (const [k, v] of Object.entries(value as Record<string, unknown>)) out.push(...unknownFields(child, v, `${at}[${k}]`));
    else if (Array.isArray(value)) value.forEach((v, i) => out.push(...unknownFields(child, v, `${at}[${i}]`)));
    else out.push(...unknownFields(child, value, at));
  }
  return out;
}
