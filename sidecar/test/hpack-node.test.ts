/**
 * HPACK cross-checked against a peer nobody here wrote — Node's `node:http2` (nghttp2) — over real
 * h2c connections on loopback, and against itself. A raw client writes HEADERS frames whose blocks
 * come from our `HpackEncoder` and a Node server must read back the same fields; the Node server
 * answers each with random response headers its own encoder compresses, which our `HpackDecoder`
 * must read back. Hundreds of blocks share each connection's dynamic tables, so indexing, eviction
 * and table size updates are exercised on both sides. Random lists are seeded; a failure prints
 * the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { HpackDecoder } from '../src/hpack-decoder';
import { HpackEncoder } from '../src/hpack-encoder';
import { frame } from './h2-fixtures';
import { rng } from './hpack-fixtures';

const TOKEN = 'abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&*+^`|~';
/** Field-value octets Node accepts: visible ASCII, space and tab inside, and obs-text 0x80-0xff. */
const VALUE = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).filter((c) => /[\x21-\x7e\x80-\xff]/.test(c)).join('') + '  \t';

function token(r: (n: number) => number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += TOKEN[r(TOKEN.length)];
  return s;
}

function fieldValue(r: (n: number) => number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += VALUE[r(VALUE.length)];
  // No leading or trailing whitespace (RFC 9113 §8.2.1, which nghttp2 enforces).
  return s.trim();
}

/** Names and values drawn from small pools repeat, so the dynamic table is used; some are one-offs. */
function randomFields(r: (n: number) => number, names: readonly string[], values: readonly string[], count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = r(4) === 0 ? `x-${token(r, 1 + r(20))}` : names[r(names.length)]!;
    const roll = r(10);
    const value = roll < 6 ? values[r(values.length)]! : roll < 9 ? fieldValue(r, r(40)) : fieldValue(r, 200 + r(1500));
    out.push(name, value);
  }
  return out;
}

const NAMES = ['x-a', 'x-b', 'content-type', 'user-agent', 'accept', 'grpc-timeout', 'grpc-encoding', 'x-request-id', 'cookie', 'authorization', 'x-b3-traceid', 'cache-control'];

test('own round trip: 3000 random blocks through one encoder/decoder pair, with table size changes, eviction, every octet value and refused blocks', () => {
  const seed = Date.now() & 0xffff;
  const r = rng(seed);
  const encoder = new HpackEncoder({ maxTableSize: 4096 });
  const decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 24 });
  const anyOctets = (n: number): string => String.fromCharCode(...Array.from({ length: n }, () => r(256)));
  const values = Array.from({ length: 30 }, () => anyOctets(r(30)));
  for (let i = 0; i < 3000; i++) {
    if (r(50) === 0) encoder.setMaxTableSize(r(5) === 0 ? 0 : r(5000));
    const fields = randomFields(r, NAMES, values, r(25));
    if (r(10) === 0) fields.push(anyOctets(1 + r(10)), anyOctets(r(5000)));
    if (r(40) === 0) {
      // A caller's bug mid-block (a char above U+00FF) loses that block; the next must still decode.
      const bad = [...fields];
      bad.splice(2 * r(fields.length / 2 + 1), 0, 'x-bad', 'caf\u20ac');
      assert.throws(() => encoder.encode(bad), TypeError);
    }
    const block = encoder.encode(fields);
    assert.deepEqual(decoder.decode(block), fields, `seed ${seed}, block ${i}`);
  }
});

// ---- a raw h2c client: frames in, frames out ----

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const DATA = 0, HEADERS = 1, SETTINGS = 4, GOAWAY = 7, CONTINUATION = 9;
const END_STREAM = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20;

/** HEADERS, then CONTINUATIONs past 16384 octets (the default SETTINGS_MAX_FRAME_SIZE). */
function headerFrames(streamId: number, block: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at === 0 || at < block.length; at += 16384) {
    const last = at + 16384 >= block.length;
    const type = at === 0 ? HEADERS : CONTINUATION;
    const flags = (at === 0 ? END_STREAM : 0) | (last ? END_HEADERS : 0);
    parts.push(frame(type, flags, streamId, block.subarray(at, at + 16384)));
  }
  return Buffer.concat(parts);
}

/** Parses the server's frames: acks SETTINGS (after `onSettings` saw them), collects header blocks per stream. */
class RawClient {
  readonly blocks = new Map<number, Buffer>();
  private buffered = Buffer.alloc(0);
  private pending: { streamId: number; parts: Buffer[] } | undefined;
  private waiters: (() => void)[] = [];
  private failure: Error | undefined;
  readonly socket: net.Socket;

  constructor(port: number, settings: Buffer, private readonly onSettings: (headerTableSize: number | undefined) => void) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('connection closed')));
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings)]));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async block(streamId: number): Promise<Buffer> {
    for (;;) {
      const b = this.blocks.get(streamId);
      if (b) return b;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const cb of w) cb();
  }

  private read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      const type = this.buffered[3]!;
      const flags = this.buffered[4]!;
      const streamId = this.buffered.readUInt32BE(5) & 0x7fffffff;
      let payload = this.buffered.subarray(9, 9 + length);
      this.buffered = this.buffered.subarray(9 + length);
      if (type === SETTINGS && !(flags & 1)) {
        let size: number | undefined;
        for (let at = 0; at + 6 <= payload.length; at += 6) if (payload.readUInt16BE(at) === 1) size = payload.readUInt32BE(at + 2);
        this.onSettings(size);
        this.write(frame(SETTINGS, 1, 0));
      } else if (type === GOAWAY) {
        this.fail(new Error(`GOAWAY error ${payload.readUInt32BE(4)}: ${payload.subarray(8).toString()}`));
      } else if (type === HEADERS) {
        if (flags & PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
        if (flags & PRIORITY) payload = payload.subarray(5);
        this.pending = { streamId, parts: [payload] };
      } else if (type === CONTINUATION && this.pending) {
        this.pending.parts.push(payload);
      } else if (type === DATA) {
        continue;
      }
      if ((type === HEADERS || type === CONTINUATION) && flags & END_HEADERS && this.pending) {
        this.blocks.set(this.pending.streamId, Buffer.concat(this.pending.parts));
        this.pending = undefined;
      }
    }
    this.wake();
  }
}

/** One connection: our requests go to a Node server, its responses come back to our decoder. */
async function exchange(blocks: number, serverTableSize: number | undefined, clientTableSize: number): Promise<void> {
  const seed = Date.now() & 0xffff;
  const r = rng(seed);
  const values = Array.from({ length: 40 }, () => fieldValue(r, r(30)));
  const authorities = ['svc.ns.svc.cluster.local:50051', 'a.test', 'b.test:8080'];
  const received: string[][] = [];
  const responses: string[][] = [];
  const server = http2.createServer(serverTableSize === undefined ? {} : { settings: { headerTableSize: serverTableSize } });
  const receivedSensitive: string[][] = [];
  const sentSensitive: Set<string>[] = [];
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: unknown, rawHeaders: string[]) => {
    received.push(rawHeaders);
    receivedSensitive.push([...((headers as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? [])].sort());
    // Node takes an object: a repeated name is an array, sent as separate fields.
    const fields = randomFields(r, NAMES.filter((n) => n !== 'cookie'), values, r(20));
    const object: Record<string, string | string[]> = {};
    for (let i = 0; i < fields.length; i += 2) {
      const [name, value] = [fields[i]!, fields[i + 1]!];
      const had = object[name];
      if (had === undefined) object[name] = value;
      else if (name.startsWith('x-')) object[name] = [had, value].flat(); // Node allows one value of the standard names

    }
    const expected = [':status', '200'];
    for (const [name, value] of Object.entries(object)) for (const v of [value].flat()) expected.push(name, v);
    expected.push('date'); // Node adds one; its value is checked by shape below.
    responses.push(expected);
    // Now and then one name goes never-indexed, which our decoder must report.
    const names = Object.keys(object);
    const secret = names.length > 0 && r(3) === 0 ? [names[r(names.length)]!] : [];
    sentSensitive.push(new Set(secret.flatMap((name) => [object[name]!].flat())));
    stream.respond({ ':status': 200, ...object, [http2.sensitiveHeaders]: secret }, { endStream: true });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => sessions.add(session));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder({ maxTableSize: clientTableSize });
  let settingsSeen!: () => void;
  const ready = new Promise<void>((resolve) => (settingsSeen = resolve));
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(1, 0);
  settings.writeUInt32BE(clientTableSize, 2);
  const client = new RawClient((server.address() as AddressInfo).port, settings, (size) => {
    if (size !== undefined) encoder.setMaxTableSize(size);
    settingsSeen();
  });
  try {
    await ready;
    for (let i = 0; i < blocks; i++) {
      const streamId = 1 + 2 * i;
      const request = [':method', r(2) ? 'POST' : 'GET', ':scheme', 'http', ':path', `/pkg.Svc/${token(r, 1 + r(3))}`, ':authority', authorities[r(3)]!];
      request.push(...randomFields(r, NAMES, values, r(30)));
      // Now and then one value is passed on as never-indexed, as a relay would.
      const secret = request.length > 8 && r(3) === 0 ? new Set([request[9 + 2 * r((request.length - 8) / 2)]!]) : undefined;
      client.write(headerFrames(streamId, encoder.encode(request, 0, secret)));
      const response = decoder.decode(await client.block(streamId));
      assert.deepEqual(received[i], request, `seed ${seed}: request ${i} as Node read it`);
      // Node lists the names that arrived never-indexed: credentials, short cookies, and ours.
      const neverIndexed = [];
      for (let f = 0; f < request.length; f += 2) {
        const [name, value] = [request[f]!, request[f + 1]!];
        if (secret?.has(value) || name === 'authorization' || (name === 'cookie' && value.length < 20)) neverIndexed.push(name);
      }
      assert.deepEqual(receivedSensitive[i], neverIndexed.sort(), `seed ${seed}: request ${i} never-indexed names`);
      for (const value of sentSensitive[i]!) assert.ok(decoder.neverIndexed?.has(value), `seed ${seed}: response ${i} never-indexed ${JSON.stringify(value.slice(0, 20))}`);
      const expected = responses[i]!;
      assert.deepEqual(response.slice(0, expected.length), expected, `seed ${seed}: response ${i} as we read it`);
      assert.match(response[expected.length]!, /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
      assert.equal(response.length, expected.length + 1);
    }
  } finally {
    client.close();
    for (const session of sessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('Node reads 400 requests our encoder wrote and we read its 400 responses on one connection, never-indexed fields kept both ways (4096-octet tables)', async () => {
  await exchange(400, undefined, 4096);
});

test('small tables both ways: Node advertises 256 (our encoder sends the size update), we advertise 100 (Node\'s does)', async () => {
  await exchange(300, 256, 100);
});

test('no dynamic table: Node advertises 0 and we advertise 0; literals and static indexes only', async () => {
  await exchange(100, 0, 0);
});
