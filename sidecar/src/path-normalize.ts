/**
 * Request target normalization (docs/http-safety.md, "Path normalization"): the one form of the
 * path and Host that route matching (and, later, authorization) sees AND that the upstream is sent,
 * so the proxy and the app can never disagree about which resource was asked for (FIELD-NOTES 22).
 *
 * The path, in this order (Envoy's `normalize_path` then `merge_slashes`):
 *   1. refuse: a raw `#`, a raw `\`, a byte outside visible ASCII, a malformed `%`, an encoded
 *      `/` or `\` (`%2F`, `%5C`) or NUL (`%00`), a `.`/`..` segment carrying `;` parameters;
 *   2. decode percent-encoded unreserved characters (`%61` → `a`, `%2E` → `.`), upper-case the hex
 *      of every other escape (`%3a` → `%3A`);
 *   3. remove dot segments (RFC 3986 §5.2.4; `..` never climbs above `/`);
 *   4. merge repeated slashes.
 * The query string is kept byte for byte. Case is kept: path matching is case-sensitive, as Envoy's.
 */
import type { ListenerDirection } from './config';
import { InvalidPathError, MalformedRequestError, type DownstreamProtocolError } from './proxy-errors';

/** Where a request is going, normalized. */
export interface RequestTarget {
  /** Lower case, without a trailing dot (`Foo.Example.:80` → `foo.example:80`); '' when absent. */
  readonly host: string;
  /** Normalized path plus the query as received (`/a/c?x=1`); `*` for `OPTIONS *`. */
  readonly path: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
// Visible ASCII except `\` and `#` (both refused with their own reason before this is consulted).
const PATH_CHARS = /^[\x21-\x7e]*$/;
const HOST_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=%:[\]]*$/;
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/i;

/**
 * Normalizes a path (no query string). Returns the normalized path or the refusal; never throws.
 * Pure and synchronous; a path that needs no change is returned as is without allocating.
 */
export function normalizePath(raw: string): string | InvalidPathError {
  if (!raw.startsWith('/')) return new InvalidPathError('path-not-origin-form', 'path must start with /');
  if (raw.includes('#')) return new InvalidPathError('path-fragment', 'fragment (#) in request target');
  if (raw.includes('\\')) return new InvalidPathError('path-backslash', 'backslash in path');
  if (!PATH_CHARS.test(raw)) return new InvalidPathError('path-character', 'invalid character in path');
  let path = raw;
  if (path.includes('%')) {
    const decoded = decodeUnreserved(path);
    if (decoded instanceof InvalidPathError) return decoded;
    path = decoded;
  }
  if (path.includes('/.')) {
    const removed = removeDotSegments(path);
    if (removed instanceof InvalidPathError) return removed;
    path = removed;
  }
  if (path.includes('//')) path = path.replace(/\/{2,}/g, '/');
  return path;
}

/** Step 2, refusing escapes that would change the path's structure or end it early. */
function decodeUnreserved(path: string): string | InvalidPathError {
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', from)) {
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return new InvalidPathError('path-percent-encoding', 'malformed percent-encoding in path');
    const byte = parseInt(hex, 16);
    // Encoded slashes and backslashes: an app that decodes before routing sees a different path
    // than we matched (`/admin%2Fx` vs prefix `/admin/`), so neither form is safe. See the docs.
    if (byte === 0x2f || byte === 0x5c) return new InvalidPathError('path-escaped-slash', 'encoded slash or backslash (%2F, %5C) in path');
    if (byte === 0) return new InvalidPathError('path-escaped-nul', 'encoded NUL (%00) in path');
    const ch = String.fromCharCode(byte);
    out += path.slice(from, i) + (UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`);
    from = i + 3;
  }
  return out + path.slice(from);
}

/** Step 3: RFC 3986 §5.2.4 on an absolute path. Empty segments (from `//`) are kept for step 4. */
function removeDotSegments(path: string): string | InvalidPathError {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // `/a/b/..` → `/a/`: the result still names a directory.
      if (i === segments.length - 1) out.push('');
      continue;
    }
    // `..;x` is `..` to servlet containers (Tomcat, Jetty strip path parameters before resolving
    // dots), but an ordinary segment to us: refuse rather than disagree.
    const bare = s.includes(';') ? s.slice(0, s.indexOf(';')) : s;
    if (bare === '.' || bare === '..') return new InvalidPathError('path-dot-segment-parameter', 'dot segment with ; parameters in path');
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * Host for matching: lower case, a trailing dot on the name removed (`example.com.` is the same
 * name, fully qualified). Refuses characters no authority may hold (RFC 3986 §3.2.2).
 */
export function normalizeHost(raw: string): string | MalformedRequestError {
  // Most requests on a listener carry the Host of the one before: the same answer, and the same
  // string (its hash already computed for the route table's lookup).
  if (raw === lastHost.raw) return lastHost.normalized;
  const h = normalizeHostOnce(raw);
  if (typeof h === 'string') lastHost = { raw, normalized: h };
  return h;
}

let lastHost = { raw: '', normalized: '' };

function normalizeHostOnce(raw: string): string | MalformedRequestError {
  if (!HOST_CHARS.test(raw)) return new MalformedRequestError('host-invalid', 'invalid character in host');
  const host = raw.toLowerCase();
  if (host.endsWith('.')) return host.slice(0, -1);
  const m = /^(.*)\.(:\d*)$/.exec(host);
  return m ? m[1]! + m[2]! : host;
}

/**
 * The normalized target of a request. Origin-form (`/path?q`) always; `*` only for OPTIONS;
 * absolute-form (`http://authority/path`) only on an outbound listener, where an app may use the
 * sidecar as an HTTP proxy — its authority then wins over Host (RFC 9112 §3.2.2). Anything else is
 * refused with a `DownstreamProtocolError`.
 */
export function requestTarget(
  url: string,
  hostHeader: string | undefined,
  method: string,
  direction: ListenerDirection,
): RequestTarget | DownstreamProtocolError {
  let host = hostHeader ?? '';
  let target = url;
  if (url === '*') {
    if (method !== 'OPTIONS') return new InvalidPathError('path-asterisk', 'asterisk-form only with OPTIONS');
    const h = normalizeHost(host);
    return typeof h === 'string' ? { host: h, path: '*' } : h;
  }
  if (!url.startsWith('/')) {
    const m = direction === 'outbound' ? ABSOLUTE_FORM.exec(url) : null;
    if (!m) return new InvalidPathError(direction === 'outbound' ? 'path-not-origin-form' : 'path-absolute-form', 'path must start with /');
    if (m[1]!.includes('@')) return new InvalidPathError('authority-userinfo', 'userinfo in request target');
    host = m[1]!;
    target = m[2]!.startsWith('/') ? m[2]! : `/${m[2]!}`;
  }
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  if (q >= 0 && target.includes('#', q)) return new InvalidPathError('path-fragment', 'fragment (#) in request target');
  const path = normalizePath(rawPath);
  if (typeof path !== 'string') return path;
  const h = normalizeHost(host);
  if (typeof h !== 'string') return h;
  return { host: h, path: q < 0 ? path : path + target.slice(q) };
}
