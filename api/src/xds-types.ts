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

const typeCaches = new WeakMap<protobuf.Root, Map<string, protobuf.Type>>();

/** The message type of a type URL in `root` (by default the full `xdsRoot()`); throws when absent. */
export function messageType(typeUrl: string, root: protobuf.Root = xdsRoot()): protobuf.Type {
  let cache = typeCaches.get(root);
  if (!cache) typeCaches.set(root, (cache = new Map()));
  let t = cache.get(typeUrl);
  if (!t) {
    const name = typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl;
    t = root.lookupType(name);
    cache.set(typeUrl, t);
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
 * With `root` (the sidecar's subset, `sidecarXdsRoot()`), a nested `Any` of a type that root
 * does not have stays undecoded but still names its type: `{ '@type': url, type_url, value }`.
 */
export function unpackAny(any: AnyMessage, root?: protobuf.Root): Record<string, unknown> {
  const t = messageType(any.type_url, root);
  const message = t.decode(any.value);
  const object = t.toObject(message, { enums: String, longs: String, defaults: false, arrays: true, oneofs: true, json: true });
  if (root) nameUndecodedAnys(object);
  return object;
}

/** Adds `@type` to each nested `Any` protobufjs left undecoded (`{ type_url, value }` only). */
function nameUndecodedAnys(o: unknown): void {
  if (o === null || typeof o !== 'object') return;
  if (Array.isArray(o)) return o.forEach(nameUndecodedAnys);
  const rec = o as Record<string, unknown>;
  const keys = Object.keys(rec);
  if (typeof rec.type_url === 'string' && keys.every((k) => k === 'type_url' || k === 'value') && !('@type' in rec)) rec['@type'] = rec.type_url;
  else for (const k of keys) nameUndecodedAnys(rec[k]);
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
