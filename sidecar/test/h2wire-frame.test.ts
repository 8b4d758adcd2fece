/**
 * The frame codec on its own: the streaming parser over arbitrary socket chunk boundaries (frames
 * split anywhere come out whole; a DATA frame inside one chunk comes out as a view of it, not a
 * copy), header blocks split into CONTINUATION frames, padding, and the size checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLIENT_PREFACE,
  encodeFrame,
  encodeHeaderBlock,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FRAME_CONTINUATION,
  FRAME_DATA,
  FRAME_HEADERS,
  H2FrameParser,
  unpad,
} from '../src/h2wire-frame';
import { H2WireConnectionError } from '../src/h2wire-errors';

type Got = { type: number; flags: number; id: number; payload: Buffer };

function parse(chunks: Buffer[], preface = false, maxFrameSize?: number): Got[] {
  const got: Got[] = [];
  const p = new H2FrameParser((type, flags, id, payload) => got.push({ type, flags, id, payload }), preface);
  if (maxFrameSize) p.maxFrameSize = maxFrameSize;
  for (const c of chunks) p.push(c);
  return got;
}

test('frames split at every byte boundary come out whole and in order', () => {
  const wire = Buffer.concat([CLIENT_PREFACE, encodeFrame(FRAME_DATA, 0, 1, Buffer.from('hello')), encodeFrame(FRAME_DATA, FLAG_END_STREAM, 3, Buffer.from('world!'))]);
  for (let cut = 1; cut < wire.length; cut++) {
    const got = parse([wire.subarray(0, cut), wire.subarray(cut)], true);
    assert.deepEqual(got.map((g) => [g.id, g.flags, g.payload.toString()]), [[1, 0, 'hello'], [3, FLAG_END_STREAM, 'world!']]);
  }
  const bytes = [...wire].map((b) => Buffer.from([b]));
  assert.equal(parse(bytes, true).length, 2);
});

test('a DATA payload inside one chunk is a view of that chunk (not copied)', () => {
  const chunk = Buffer.concat([encodeFrame(FRAME_DATA, 0, 1, Buffer.from('abc')), encodeFrame(FRAME_DATA, 0, 1, Buffer.from('def'))]);
  const got = parse([chunk]);
  assert.equal(got[1]!.payload.buffer, chunk.buffer);
  chunk[9] = 0x41; // the first payload octet, changed in the chunk, shows in the payload
  assert.equal(got[0]!.payload.toString(), 'Abc');
});

test('a frame over the advertised SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR before its payload arrives', () => {
  const header = encodeFrame(FRAME_DATA, 0, 1, Buffer.alloc(16385)).subarray(0, 9);
  assert.throws(() => parse([header]), (e: H2WireConnectionError) => e.reason === 'frame-size' && e.h2Code === 6);
  assert.equal(parse([encodeFrame(FRAME_DATA, 0, 1, Buffer.alloc(16385))], false, 32768).length, 1);
});

test('a wrong preface is PROTOCOL_ERROR even when it arrives a byte at a time', () => {
  const bad = Buffer.from('PRI * HTTP/1.1\r\n');
  assert.throws(() => parse([...bad].map((b) => Buffer.from([b])), true), (e: H2WireConnectionError) => e.reason === 'bad-preface' && e.h2Code === 1);
});

test('a header block longer than the peer max frame size goes out as HEADERS + CONTINUATION, END_STREAM on HEADERS only', () => {
  const block = Buffer.alloc(40000, 7);
  const got = parse([encodeHeaderBlock(5, block, true, 16384)]);
  assert.deepEqual(got.map((g) => [g.type, g.flags, g.payload.length]), [
    [FRAME_HEADERS, FLAG_END_STREAM, 16384],
    [FRAME_CONTINUATION, 0, 16384],
    [FRAME_CONTINUATION, FLAG_END_HEADERS, 40000 - 2 * 16384],
  ]);
  assert.deepEqual(Buffer.concat(got.map((g) => g.payload)), block);
});

test('padding and priority fields are stripped; padding past the payload is PROTOCOL_ERROR', () => {
  const payload = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 1, 16]), Buffer.from('blk'), Buffer.alloc(3)]);
  const r = unpad(FRAME_HEADERS, FLAG_PADDED | FLAG_PRIORITY, 3, payload);
  assert.equal(r.body.toString(), 'blk');
  assert.equal(r.dependency, 1);
  assert.throws(() => unpad(FRAME_DATA, FLAG_PADDED, 1, Buffer.from([9, 1, 2])), (e: H2WireConnectionError) => e.h2Code === 1);
});
