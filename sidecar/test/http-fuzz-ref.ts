/**
 * The fuzzer's reference: an INDEPENDENT, deliberately strict HTTP/1.1 request parser (RFC 9112)
 * and an independent re-implementation of docs/http-safety.md's acceptance rules and path
 * normalization. It shares no code with the sidecar (no llhttp, nothing from ../src), so where the
 * two disagree one of them is wrong — the oracle (http-fuzz-oracle.ts) says which way.
 *
 * Input and output are latin1 strings: one character per byte.
 *
 * `parseStream` reads a byte stream as a sequence of request messages and stops at the first one it
 * cannot frame (`reject`) or that the bytes end inside (`incomplete`). It is used twice: on what the
 * client sent (`judgeRequest` then applies the proxy's semantic rules) and on what the upstream
 * received from the sidecar (which must parse cleanly).
 */

export interface RefLimits {
  /** Request line plus header lines (bytes); a message within 10 % of it may go either way. */
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
}

export interface RefMessage {
  readonly method: string;
  readonly target: string;
  readonly version: '1.0' | '1.1';
  /** Field lines as sent (name case kept; value without leading/trailing OWS). */
  readonly headers: readonly (readonly [string, string])[];
  readonly framing: 'none' | 'length' | 'chunked';
  /** The decoded body. */
  readonly body: string;
  /** Offsets in the stream: start, end of the header section, end of the message. */
  readonly start: number;
  readonly headEnd: number;
  readonly end: number;
  /** The header section is within 10 % of `maxHeaderBytes`: a 431 is as right as a pass. */
  readonly nearHeaderLimit: boolean;
}

export type RefEnd =
  /** Every byte was consumed, ending on a message boundary. */
  | { readonly kind: 'clean' }
  /** The bytes end inside a message that started at `start`. */
  | { readonly kind: 'incomplete'; readonly start: number; readonly headEnd?: number; readonly head?: RefMessage }
  /** The message at `start` cannot be framed: `why` names the rule; `status` is the class (400, 431, 505). */
  | { readonly kind: 'reject'; readonly start: number; readonly at: number; readonly status: number; readonly why: string };

export interface RefParse {
  readonly messages: RefMessage[];
  readonly end: RefEnd;
}

/** The methods llhttp knows for requests (an unknown method is refused by every strict parser). */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'DELETE', 'GET', 'HEAD', 'POST', 'PUT', 'CONNECT', 'OPTIONS', 'TRACE', 'COPY', 'LOCK', 'MKCOL', 'MOVE',
  'PROPFIND', 'PROPPATCH', 'SEARCH', 'UNLOCK', 'BIND', 'REBIND', 'UNBIND', 'ACL', 'REPORT', 'MKACTIVITY',
  'CHECKOUT', 'MERGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE', 'PATCH', 'PURGE', 'MKCALENDAR',
  'LINK', 'UNLINK', 'QUERY',
]);

const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field-content: VCHAR / obs-text, with SP and HTAB inside.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^[\x21-\x7e]+$/;
const HEX = /^[0-9A-Fa-f]+$/;
const DIGITS = /^[0-9]+$/;

class Reject extends Error {
  constructor(
    readonly at: number,
    readonly status: number,
    readonly why: string,
  ) {
    super(why);
  }
}

class NeedMore extends Error {
  /** Set when the head was complete and the body is not: what a proxy can already judge. */
  head?: RefMessage;
}

/** Reads one CRLF-terminated line starting at `pos`; a bare CR or bare LF is a rejection. */
function line(s: string, pos: number): { text: string; next: number } {
  for (let i = pos; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0a) throw new Reject(i, 400, 'bare LF');
    if (c === 0x0d) {
      if (i + 1 >= s.length) throw new NeedMore();
      if (s.charCodeAt(i + 1) !== 0x0a) throw new Reject(i, 400, 'bare CR');
      return { text: s.slice(pos, i), next: i + 2 };
    }
  }
  throw new NeedMore();
}

/** Trims OWS (SP, HTAB) from both ends. */
const trimOws = (v: string): string => v.replace(/^[ \t]+|[ \t]+$/g, '');

/**
 * Parses field lines from `pos` to the empty line; returns them and the offset after the empty line.
 * No obs-fold, no whitespace before the colon, token names, field-value characters only.
 */
function fieldLines(s: string, pos: number, counted: { bytes: number }): { fields: [string, string][]; next: number } {
  const fields: [string, string][] = [];
  for (;;) {
    const l = line(s, pos);
    if (l.text === '') return { fields, next: l.next };
    counted.bytes += l.text.length + 2;
    if (l.text.startsWith(' ') || l.text.startsWith('\t')) throw new Reject(pos, 400, 'obs-fold or leading whitespace');
    const colon = l.text.indexOf(':');
    if (colon <= 0) throw new Reject(pos, 400, 'field line without a name and colon');
    const name = l.text.slice(0, colon);
    if (!TCHAR.test(name)) throw new Reject(pos, 400, 'invalid field name');
    const value = trimOws(l.text.slice(colon + 1));
    // llhttp refuses a Content-Length followed by a tab (RFC 9110 allows OWS): stricter, harmless,
    // and documented in docs/http-safety.md; the reference follows it.
    if (name.toLowerCase() === 'content-length' && /\t[ \t]*$/.test(l.text)) throw new Reject(pos, 400, 'content-length with a trailing tab');
    if (!FIELD_VALUE.test(value)) throw new Reject(pos, 400, 'invalid character in field value');
    fields.push([name, value]);
    pos = l.next;
  }
}

const fieldsNamed = (fields: readonly (readonly [string, string])[], name: string): string[] =>
  fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

/** One message from `start`. */
function message(s: string, start: number, limits: RefLimits): RefMessage {
  const counted = { bytes: 0 };
  const rl = line(s, start);
  counted.bytes += rl.text.length + 2;
  // Runs of SP between the parts are accepted, as RFC 9112 §3 allows and llhttp does; the sidecar
  // writes a fresh request line upstream, so no other parser ever sees them.
  const m = /^([^ ]+) +([^ ]+) +HTTP\/(\d)\.(\d)$/.exec(rl.text);
  if (!m) throw new Reject(start, 400, 'malformed request line');
  const [, method, target, major, minor] = m as unknown as [string, string, string, string, string];
  if (!TCHAR.test(method) || !KNOWN_METHODS.has(method)) throw new Reject(start, 400, 'unknown method');
  if (!TARGET.test(target)) throw new Reject(start, 400, 'invalid request target');
  if (major !== '1' || (minor !== '0' && minor !== '1')) throw new Reject(start, major === '1' ? 400 : 505, 'unsupported version');
  const version = minor === '0' ? '1.0' : '1.1';
  const { fields, next: headEnd } = fieldLines(s, rl.next, counted);
  const over = counted.bytes > limits.maxHeaderBytes;
  const nearHeaderLimit = Math.abs(counted.bytes - limits.maxHeaderBytes) <= limits.maxHeaderBytes * 0.1;
  if (over && !nearHeaderLimit) throw new Reject(start, 431, 'header section too large');
  if (fields.length > limits.maxHeaderCount) throw new Reject(start, 431, 'too many fields');

  // Framing (RFC 9112 §6): anything two parsers could read two ways is refused.
  const te = fieldsNamed(fields, 'transfer-encoding');
  const cl = fieldsNamed(fields, 'content-length');
  let framing: RefMessage['framing'] = 'none';
  let length = 0;
  if (te.length > 0) {
    if (cl.length > 0) throw new Reject(start, 400, 'content-length with transfer-encoding');
    if (version === '1.0') throw new Reject(start, 400, 'transfer-encoding in HTTP/1.0');
    if (te.length > 1 || te[0]!.toLowerCase() !== 'chunked') throw new Reject(start, 400, 'transfer-encoding other than chunked');
    framing = 'chunked';
  } else if (cl.length > 0) {
    if (cl.length > 1) throw new Reject(start, 400, 'repeated content-length');
    // 15 digits: the sidecar's documented bound (safe integers); more is refused, not truncated.
    if (!DIGITS.test(cl[0]!) || cl[0]!.length > 15) throw new Reject(start, 400, 'invalid content-length');
    length = Number(cl[0]);
    framing = length > 0 ? 'length' : 'none';
  }
  // CONNECT has no body: what follows its head is tunnel data (and the proxy refuses it anyway).
  if (method === 'CONNECT') framing = 'none';
  const head: RefMessage = { method, target, version, headers: fields, framing, body: '', start, headEnd, end: headEnd, nearHeaderLimit: over || nearHeaderLimit };
  try {
    return bodyOf(s, head, length, limits);
  } catch (e) {
    if (e instanceof NeedMore) e.head = head;
    throw e;
  }
}

function bodyOf(s: string, head: RefMessage, length: number, limits: RefLimits): RefMessage {
  const { framing, headEnd } = head;
  let body = '';
  let end = headEnd;
  if (framing === 'length') {
    if (s.length < headEnd + length) throw new NeedMore();
    body = s.slice(headEnd, headEnd + length);
    end = headEnd + length;
  } else if (framing === 'chunked') {
    const c = chunked(s, headEnd, limits);
    body = c.body;
    end = c.end;
  }
  return { ...head, body, end };
}

/** A chunked body from `pos` (RFC 9112 §7.1): sizes are HEXDIG only, extensions `;name[=value]`. */
function chunked(s: string, pos: number, limits: RefLimits): { body: string; end: number } {
  let body = '';
  for (;;) {
    const l = line(s, pos);
    const semi = l.text.indexOf(';');
    const size = semi < 0 ? l.text : l.text.slice(0, semi);
    if (!HEX.test(size)) throw new Reject(pos, 400, 'invalid chunk size');
    const significant = size.replace(/^0+/, '');
    if (significant.length > 15) throw new Reject(pos, 400, 'chunk size overflow');
    // Extension names must be tokens; values are not checked beyond CTLs: the sidecar re-frames
    // every chunked body and drops extensions, so their syntax never reaches an upstream parser.
    if (semi >= 0 && !/^(;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(=("[^"\x00-\x1f\x7f]*"|[^;"\x00-\x20\x7f]*))?)+$/.test(l.text.slice(semi))) {
      throw new Reject(pos, 400, 'invalid chunk extension');
    }
    if (l.text.length > limits.maxHeaderBytes) throw new Reject(pos, 400, 'chunk extensions too long');
    const n = parseInt(significant || '0', 16);
    pos = l.next;
    if (n === 0) {
      // Trailer section: field lines, then the empty line.
      const t = fieldLines(s, pos, { bytes: 0 });
      return { body, end: t.next };
    }
    if (s.length < pos + n) throw new NeedMore();
    const after = s.slice(pos + n, pos + n + 2);
    if (!'\r\n'.startsWith(after)) throw new Reject(pos + n, 400, 'chunk data not followed by CRLF');
    if (after.length < 2) throw new NeedMore();
    body += s.slice(pos, pos + n);
    pos += n + 2;
  }
}

/** Reads `s` as consecutive request messages (see the module comment). Never throws. */
export function parseStream(s: string, limits: RefLimits): RefParse {
  const messages: RefMessage[] = [];
  let pos = 0;
  while (pos < s.length) {
    // RFC 9112 §2.2: empty lines before a request line are ignored (llhttp does too).
    if (s.startsWith('\r\n', pos)) {
      pos += 2;
      continue;
    }
    if (s.slice(pos) === '\r') return { messages, end: { kind: 'incomplete', start: pos } };
    try {
      const msg = message(s, pos, limits);
      messages.push(msg);
      pos = msg.end;
      // An upgrade request hands the connection over: what follows is not HTTP. After a request
      // that does not keep the connection (HTTP/1.0 without keep-alive, `Connection: close`), the
      // server closes it: nothing after is read.
      if (isUpgrade(msg) || msg.method === 'CONNECT' || !persistent(msg)) return { messages, end: { kind: 'clean' } };
    } catch (e) {
      if (e instanceof NeedMore) {
        const headEnd = headEndOf(s, pos);
        if (e.head) return { messages, end: { kind: 'incomplete', start: pos, headEnd: e.head.headEnd, head: e.head } };
        return { messages, end: headEnd === undefined ? { kind: 'incomplete', start: pos } : { kind: 'incomplete', start: pos, headEnd } };
      }
      if (e instanceof Reject) return { messages, end: { kind: 'reject', start: pos, at: e.at, status: e.status, why: e.why } };
      throw e;
    }
  }
  return { messages, end: { kind: 'clean' } };
}

function headEndOf(s: string, pos: number): number | undefined {
  const i = s.indexOf('\r\n\r\n', pos);
  return i < 0 ? undefined : i + 4;
}

/** RFC 9112 §9.3: whether the connection persists after `msg`. */
export function persistent(msg: Pick<RefMessage, 'headers' | 'version'>): boolean {
  const tokens = connectionTokens(msg);
  return msg.version === '1.1' ? !tokens.includes('close') : tokens.includes('keep-alive') && !tokens.includes('close');
}

// llhttp reads `Proxy-Connection` as `Connection` (a non-standard field old clients send).
const connectionTokens = (msg: Pick<RefMessage, 'headers'>): string[] =>
  [...fieldsNamed(msg.headers, 'connection'), ...fieldsNamed(msg.headers, 'proxy-connection')].join(',').toLowerCase().split(',').map((t) => t.trim());

/** `Connection: upgrade` (a token of it) and an `Upgrade` field: the connection is handed over. */
export function isUpgrade(msg: Pick<RefMessage, 'headers'>): boolean {
  return connectionTokens(msg).includes('upgrade') && fieldsNamed(msg.headers, 'upgrade').length > 0;
}

// ---- the proxy's rules (docs/http-safety.md), re-implemented -------------------------------

export type Verdict =
  /** Forwarded upstream as `path` (normalized target) for `host`. `upgrade`: the connection then closes. */
  | { readonly kind: 'forward'; readonly path: string; readonly upgrade: boolean; readonly authority?: string }
  /** Refused by the proxy: status, and the connection closes. */
  | { readonly kind: 'refuse'; readonly status: number; readonly why: string }
  /** Answered by the proxy without forwarding, connection kept (OPTIONS * → 404, Expect → 417). */
  | { readonly kind: 'answer'; readonly status: number; readonly why: string };

const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=%:[\]]*$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** What the proxy must do with a well-framed `msg` arriving on a listener of `direction`. */
export function judgeRequest(msg: RefMessage, direction: 'outbound' | 'inbound'): Verdict {
  const hosts = fieldsNamed(msg.headers, 'host');
  if (msg.method === 'CONNECT') return { kind: 'refuse', status: 405, why: 'CONNECT' };
  if (hosts.length > 1) return { kind: 'refuse', status: 400, why: 'repeated host' };
  if (hosts.length === 0 && msg.version === '1.1') return { kind: 'refuse', status: 400, why: 'missing host' };
  const upgrade = isUpgrade(msg);
  if (upgrade && msg.framing !== 'none') return { kind: 'refuse', status: 400, why: 'upgrade with a body' };
  let target = msg.target;
  let authority: string | undefined;
  if (target === '*') {
    if (msg.method !== 'OPTIONS') return { kind: 'refuse', status: 400, why: 'asterisk-form without OPTIONS' };
    if (hosts.length === 1 && !AUTHORITY.test(hosts[0]!)) return { kind: 'refuse', status: 400, why: 'invalid host' };
    // The expectation is checked after the target checks and before routing (docs/http-safety.md).
    return unmetExpectation(msg) ?? { kind: 'answer', status: 404, why: 'OPTIONS * matches no route' };
  }
  if (!target.startsWith('/')) {
    const m = /^[hH][tT][tT][pP][sS]?:\/\/([^/?#]*)(.*)$/.exec(target);
    if (!m || direction !== 'outbound') return { kind: 'refuse', status: 400, why: 'not origin-form' };
    if (m[1]!.includes('@')) return { kind: 'refuse', status: 400, why: 'userinfo' };
    if (!AUTHORITY.test(m[1]!)) return { kind: 'refuse', status: 400, why: 'invalid authority' };
    authority = m[1]!;
    target = m[2]!.startsWith('/') ? m[2]! : `/${m[2]!}`;
  } else if (hosts.length === 1 && !AUTHORITY.test(hosts[0]!)) {
    // With absolute-form the Host field is ignored (RFC 9112 §3.2.2), so only origin-form checks it.
    return { kind: 'refuse', status: 400, why: 'invalid host' };
  }
  if (target.includes('#')) return { kind: 'refuse', status: 400, why: 'fragment' };
  const q = target.indexOf('?');
  const path = normalize(q < 0 ? target : target.slice(0, q));
  if (path.startsWith('!')) return { kind: 'refuse', status: 400, why: path.slice(1) };
  const unmet = unmetExpectation(msg);
  if (unmet) return unmet;
  return { kind: 'forward', path: q < 0 ? path : path + target.slice(q), upgrade, ...(authority !== undefined ? { authority } : {}) };
}

/** An `Expect` other than a single `100-continue` is answered 417 (connection kept). */
function unmetExpectation(msg: RefMessage): Verdict | undefined {
  const expect = fieldsNamed(msg.headers, 'expect');
  if (expect.length > 0 && !(expect.length === 1 && expect[0]!.toLowerCase() === '100-continue')) {
    return { kind: 'answer', status: 417, why: 'expectation other than 100-continue' };
  }
  return undefined;
}

/**
 * docs/http-safety.md "Path normalization", written from the doc (not from path-normalize.ts):
 * refusals (returned as `!reason`), unreserved decoding, RFC 3986 §5.2.4's loop, merged slashes.
 */
export function normalize(raw: string): string {
  if (!raw.startsWith('/')) return '!not origin-form';
  if (raw.includes('\\')) return '!backslash';
  // Escapes: decode unreserved, upper-case the rest, refuse %2F %5C %00 and malformed ones.
  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '%') {
      decoded += raw[i];
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return '!malformed escape';
    const ch = String.fromCharCode(parseInt(hex, 16));
    if (ch === '/' || ch === '\\') return '!escaped slash';
    if (ch === '\0') return '!escaped NUL';
    decoded += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  // `.`/`..` with `;` parameters (servlet containers read `..;x` as `..`).
  if (decoded.split('/').some((seg) => /^\.\.?;/.test(seg))) return '!dot segment with parameters';
  // RFC 3986 §5.2.4, the input-buffer loop (absolute paths only).
  let input = decoded;
  let output = '';
  while (input.length > 0) {
    if (input.startsWith('/./') ) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3);
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else if (input === '/..') {
      input = '/';
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else {
      const next = input.indexOf('/', 1);
      const seg = next < 0 ? input : input.slice(0, next);
      output += seg;
      input = next < 0 ? '' : input.slice(next);
    }
  }
  return output.replace(/\/{2,}/g, '/') || '/';
}
