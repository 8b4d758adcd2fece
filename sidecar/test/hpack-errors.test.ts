/**
 * HPACK input a peer should never send, and the limits a proxy needs: each malformed block is a
 * COMPRESSION_ERROR (a connection error); a header list past the limits is HEADER_LIST_TOO_LARGE
 * and leaves the decoder in step with the peer, so the next block on the connection decodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder } from '../src/hpack-decoder';
import { HpackEncoder } from '../src/hpack-encoder';
import { HpackError } from '../src/hpack-errors';
import { huffmanEncode, huffmanLength } from '../src/hpack-huffman';
import { hex, rng } from './hpack-fixtures';


function refuses(block: string, code: HpackError['code'], message: RegExp, decoder = new HpackDecoder()): void {
  assert.throws(() => decoder.decode(hex(block)), (err: unknown) => {
    assert.ok(err instanceof HpackError, `an HpackError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

const MALFORMED: readonly (readonly [string, string, RegExp])[] = [
  ['an integer cut off after its prefix', 'ff', /truncated integer/],
  ['an integer cut off in its continuation octets', 'ff 80 80', /truncated integer/],
  ['an integer above 2^31-1', 'ff ff ff ff ff 0f', /above 2\^31-1/],
  ['an integer padded with more than five continuation octets', 'ff 80 80 80 80 80 80 00', /above 2\^31-1/],
  ['indexed field with index 0', '80', /index 0/],
  ['indexed field past the static table with an empty dynamic table', 'be', /index 62 is past/],
  ['indexed field far past the tables', 'ff 80 01', /index 255 is past/],
  ['literal whose name index is past the tables', '7e 01 61', /name index 62 is past/],
  ['literal with indexing cut off before its value', '41', /truncated string/],
  ['literal whose name is longer than the block', '40 05 61 62', /past the end of the block/],
  ['literal whose value is longer than the block', '04 0a 2f 61', /past the end of the block/],
  ['Huffman string whose padding is zeros, not ones', '04 81 00', /EOS or bad padding/],
  ['Huffman string padded with 8 one bits', '04 82 63 ff', /EOS or bad padding/],
  ['Huffman string holding EOS (30 one bits)', '04 84 ff ff ff fc', /EOS or bad padding/],
  ['table size update above the advertised 4096', '3f e2 1f', /above the advertised 4096/],
  ['table size update after a header field', '82 20', /after a header field/],
];

for (const [what, block, message] of MALFORMED) {
  test(`COMPRESSION_ERROR for ${what}`, () => refuses(block, 'COMPRESSION_ERROR', message));
}

test('a valid Huffman string with up to 7 one bits of padding decodes ("/a" is 6+5 bits, 5 bits of padding)', () => {
  // '/' = 011000, 'a' = 00011: 0110 0000 011|1 1111 -> 60 7f.
  assert.deepEqual(new HpackDecoder().decode(hex('04 82 60 7f')), [':path', '/a']);
});

test('upper-case names are returned as sent, for the stream layer to refuse; the connection goes on', () => {
  const decoder = new HpackDecoder();
  assert.deepEqual(decoder.decode(hex('40 01 58 01 31 be')), ['X', '1', 'X', '1']);
});

test('size updates at the start of a block: two in a row, down to 0 and back, empty the table', () => {
  const decoder = new HpackDecoder();
  assert.deepEqual(decoder.decode(hex('40 01 61 01 62')), ['a', 'b']);
  assert.equal(decoder.tableSize.entries, 1);
  assert.deepEqual(decoder.decode(hex('20 3f e1 1f 82')), [':method', 'GET']);
  assert.deepEqual(decoder.tableSize, { size: 0, maxSize: 4096, entries: 0 });
  refuses('be', 'COMPRESSION_ERROR', /index 62 is past/, decoder);
});

test('a decoder advertising 256 refuses a size update to 257 and accepts 256', () => {
  refuses('3f e2 01', 'COMPRESSION_ERROR', /update to 257 above the advertised 256/, new HpackDecoder({ maxTableSize: 256 }));
  assert.deepEqual(new HpackDecoder({ maxTableSize: 256 }).decode(hex('3f e1 01 82')), [':method', 'GET']);
});

test('an entry larger than the table empties it and is not added, yet the field is returned', () => {
  const decoder = new HpackDecoder({ maxTableSize: 64 });
  assert.deepEqual(decoder.decode(hex('40 01 61 01 62')), ['a', 'b']);
  const long = 'v'.repeat(40);
  const block = Buffer.concat([hex('40 01 63 28'), Buffer.from(long)]);
  assert.deepEqual(decoder.decode(block), ['c', long]);
  assert.deepEqual(decoder.tableSize, { size: 0, maxSize: 64, entries: 0 });
});

test('HEADER_LIST_TOO_LARGE past maxHeaderListSize, and the next block still decodes with what the refused one indexed', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder({ maxHeaderListSize: 250 });
  const big = [':method', 'POST', ':path', '/svc/Call', 'x-one', 'a'.repeat(60), 'x-two', 'b'.repeat(60)];
  assert.throws(() => decoder.decode(encoder.encode(big)), (err: unknown) => err instanceof HpackError && err.code === 'HEADER_LIST_TOO_LARGE' && /4 fields, 283 octets/.test(err.message));
  // The encoder indexed x-one and x-two; this block only refers to them.
  const next = encoder.encode([':method', 'POST', 'x-two', 'b'.repeat(60), 'x-one', 'a'.repeat(60)]);
  assert.equal(next.length, 3);
  assert.deepEqual(decoder.decode(next), [':method', 'POST', 'x-two', 'b'.repeat(60), 'x-one', 'a'.repeat(60)]);
});

test(':path is indexed the second time it is sent, then costs one octet; a path sent once never enters the table', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const call = [':method', 'POST', ':path', '/weft.test.Echo/Unary'];
  const sizes = [1, 2, 3].map(() => {
    const block = encoder.encode(call);
    assert.deepEqual(decoder.decode(block), call);
    return block.length;
  });
  // 0x83, then :path as a literal (0000 0100, Huffman string) twice — the second time with
  // indexing (01 000100) — then one octet.
  assert.equal(sizes[2], 2);
  assert.equal(sizes[0], sizes[1]);
  assert.equal(decoder.tableSize.entries, 1);
  assert.deepEqual(decoder.decode(encoder.encode([':method', 'GET', ':path', '/users/1234'])), [':method', 'GET', ':path', '/users/1234']);
  assert.equal(decoder.tableSize.entries, 1);
  // A path longer than the 256 octets remembered is never indexed, however often it is sent.
  const long = [':method', 'GET', ':path', '/' + 'p'.repeat(300)];
  for (let i = 0; i < 3; i++) assert.deepEqual(decoder.decode(encoder.encode(long)), long);
  assert.equal(decoder.tableSize.entries, 1);
});

test('HEADER_LIST_TOO_LARGE past maxHeaderCount; exactly the limit is accepted', () => {
  const decoder = new HpackDecoder({ maxHeaderCount: 3 });
  assert.deepEqual(decoder.decode(hex('82 86 84')), [':method', 'GET', ':scheme', 'http', ':path', '/']);
  refuses('82 86 84 82', 'HEADER_LIST_TOO_LARGE', /4 fields/, decoder);
  assert.deepEqual(decoder.decode(hex('82')), [':method', 'GET']);
});

test('a list of many tiny indexed fields is bounded by maxHeaderListSize, not the block length', () => {
  // 2000 one-octet references to :method GET would be 2000 * (7 + 3 + 32) = 84000 octets.
  refuses('82'.repeat(2000), 'HEADER_LIST_TOO_LARGE', /2000 fields, 84000 octets/);
});

test('bad options are refused at construction', () => {
  assert.throws(() => new HpackDecoder({ maxTableSize: -1 }), RangeError);
  assert.throws(() => new HpackDecoder({ maxHeaderListSize: 1.5 }), RangeError);
  assert.throws(() => new HpackEncoder({ maxTableSize: Number.NaN }), RangeError);
  assert.throws(() => new HpackEncoder().setMaxTableSize(2 ** 32), RangeError);
});

test('the encoder refuses chars above U+00FF and an odd-length list, and its next block still decodes', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  assert.throws(() => encoder.encode(['x-a', 'ok', 'x-b', 'caf\u20ac']), TypeError);
  assert.throws(() => encoder.encode(['x-a']), TypeError);
  // The failed call had indexed x-a, which the decoder never saw: the next block empties both
  // tables first (size update to 0, then 4096), so it cannot refer to that entry.
  const block = encoder.encode(['x-a', 'ok']);
  assert.equal(block.subarray(0, 4).toString('hex'), '203fe11f');
  assert.deepEqual(decoder.decode(block), ['x-a', 'ok']);
  assert.equal(decoder.tableSize.entries, 1);
  assert.deepEqual(decoder.decode(encoder.encode(['x-a', 'ok'])), ['x-a', 'ok']);
});

test('credentials are sent never-indexed and not added to the table; long cookies are indexed, short ones not', () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const headers = ['authorization', 'Bearer abc', 'cookie', 'sid=1', 'cookie', 'long=' + 'x'.repeat(40), 'proxy-authorization', 'Basic Zm9v'];
  const block = encoder.encode(headers);
  assert.deepEqual(decoder.decode(block), headers);
  // authorization is static 23: 0001 1111 + 23-15=8; the short cookie is static 32: 0001 1111 + 17.
  assert.equal(block.subarray(0, 2).toString('hex'), '1f08');
  assert.equal(decoder.tableSize.entries, 1);
  const again = encoder.encode(headers);
  assert.equal(again[0], 0x1f, 'authorization is never indexed the second time either');
  assert.deepEqual(decoder.decode(again), headers);
});

test('setMaxTableSize: the next block starts with the smallest size reached, then the final one', () => {
  const encoder = new HpackEncoder({ maxTableSize: 8192 });
  const decoder = new HpackDecoder({ maxTableSize: 8192 });
  assert.deepEqual(decoder.decode(encoder.encode(['x-a', '1'])), ['x-a', '1']);
  encoder.setMaxTableSize(100);
  encoder.setMaxTableSize(0);
  encoder.setMaxTableSize(16384);
  const block = encoder.encode(['x-a', '1']);
  // 0, then 8192 (our own limit caps the peer's 16384): 001 00000, then 001 11111 + 8161 (e1 3f).
  assert.equal(block.subarray(0, 4).toString('hex'), '203fe13f');
  assert.deepEqual(decoder.decode(block), ['x-a', '1']);
  assert.equal(decoder.tableSize.maxSize, 8192);
  // Unchanged settings emit nothing.
  encoder.setMaxTableSize(8192);
  assert.equal(encoder.encode([':method', 'GET']).toString('hex'), '82');
});

/** A literal with incremental indexing and a new name (`x-big`), its value raw or Huffman-coded. */
function literal(value: string, huffman: boolean): Buffer {
  const octets = huffman ? Buffer.alloc(huffmanLength(value)) : Buffer.from(value, 'latin1');
  if (huffman) huffmanEncode(value, octets, 0);
  const length = octets.length;
  // Value length as a 7-bit-prefix integer (§5.1).
  const int: number[] = [];
  if (length < 127) int.push((huffman ? 0x80 : 0) | length);
  else {
    int.push((huffman ? 0x80 : 0) | 127);
    let rest = length - 127;
    while (rest >= 128) {
      int.push((rest % 128) | 128);
      rest = Math.floor(rest / 128);
    }
    int.push(rest);
  }
  return Buffer.concat([hex('40 05'), Buffer.from('x-big'), Buffer.from(int), octets]);
}

test('a value longer than the limits is refused without being built, empties the table as RFC 7541 §4.4 says, and the next block decodes', () => {
  const decoder = new HpackDecoder();
  assert.deepEqual(decoder.decode(hex('40 01 61 01 62')), ['a', 'b']);
  assert.throws(() => decoder.decode(literal('v'.repeat(70000), false)), (err: unknown) => err instanceof HpackError && err.code === 'HEADER_LIST_TOO_LARGE');
  assert.deepEqual(decoder.tableSize, { size: 0, maxSize: 4096, entries: 0 });
  assert.deepEqual(decoder.decode(hex('82')), [':method', 'GET']);
  // Huffman-coded: still checked, so bad padding past the limit is a COMPRESSION_ERROR.
  assert.throws(() => decoder.decode(literal('w'.repeat(400000), true)), (err: unknown) => err instanceof HpackError && err.code === 'HEADER_LIST_TOO_LARGE');
  const bad = literal('w'.repeat(400000), true);
  bad[bad.length - 1] = 0x00;
  refuses(bad.toString('hex'), 'COMPRESSION_ERROR', /bad padding/, new HpackDecoder());
});

test('a Huffman string longer than the limits in octets but short once decoded is accepted (30-bit codes)', () => {
  const decoder = new HpackDecoder({ maxHeaderListSize: 100, maxTableSize: 100 });
  const value = '\n'.repeat(32); // 30 bits each: 120 octets on the wire, 32 decoded
  const block = literal(value, true);
  assert.ok(block.length > 120);
  assert.deepEqual(decoder.decode(block), ['x-big', value]);
  assert.equal(decoder.tableSize.entries, 1);
});

test('encode with headroom leaves that many octets before the block for a frame header', () => {
  const encoder = new HpackEncoder();
  const plain = new HpackEncoder().encode([':status', '200', 'content-type', 'application/grpc']);
  const framed = encoder.encode([':status', '200', 'content-type', 'application/grpc'], 9);
  assert.equal(framed.length, 9 + plain.length);
  assert.deepEqual(framed.subarray(9), plain);
  assert.deepEqual(new HpackDecoder().decode(framed.subarray(9)), [':status', '200', 'content-type', 'application/grpc']);
  assert.throws(() => encoder.encode([], -1), RangeError);
});

test('garbage never escapes as anything but an HpackError: 20000 random and mutated blocks', () => {
  const rand = rng(0x9e3779b9);
  const valid = new HpackEncoder().encode([':method', 'POST', ':path', '/a/b', 'content-type', 'application/grpc', 'x-long', 'z'.repeat(300)]);
  const outcomes = { decoded: 0, COMPRESSION_ERROR: 0, HEADER_LIST_TOO_LARGE: 0 };
  for (let i = 0; i < 20000; i++) {
    let block: Buffer;
    if (i % 2) {
      block = Buffer.from(Array.from({ length: rand(64) }, () => rand(256)));
    } else {
      block = Buffer.from(valid);
      for (let k = 1 + rand(4); k > 0; k--) block[rand(block.length)] = rand(256);
      block = block.subarray(0, block.length - rand(4));
    }
    // A decoder that saw errors is not reused for the next block, as the connection would be gone.
    const decoder = new HpackDecoder({ maxHeaderListSize: 400, maxHeaderCount: 4 });
    try {
      const fields = decoder.decode(block);
      assert.equal(fields.length % 2, 0);
      outcomes.decoded++;
    } catch (err) {
      if (!(err instanceof HpackError)) throw new Error(`block ${block.toString('hex')} threw ${String(err)}`);
      outcomes[err.code]++;
    }
  }
  // Both kinds of input were exercised: some decode, some are refused each way.
  assert.ok(outcomes.decoded > 100 && outcomes.COMPRESSION_ERROR > 100 && outcomes.HEADER_LIST_TOO_LARGE > 10, JSON.stringify(outcomes));
});

test('neverIndexed lists the values of the last block\'s never-indexed fields only, and a plain Uint8Array decodes like a Buffer', () => {
  const decoder = new HpackDecoder();
  // C.2.3: password: secret, never indexed.
  const block = hex('1008 7061 7373 776f 7264 0673 6563 7265 74');
  assert.deepEqual(decoder.decode(new Uint8Array(block)), ['password', 'secret']);
  assert.deepEqual([...(decoder.neverIndexed ?? [])], ['secret']);
  assert.deepEqual(decoder.decode(hex('82')), [':method', 'GET']);
  assert.equal(decoder.neverIndexed, undefined);
  // A view into a larger buffer, at an offset.
  const bigger = new Uint8Array(10);
  bigger.set([0x82, 0x86], 4);
  assert.deepEqual(decoder.decode(bigger.subarray(4, 6)), [':method', 'GET', ':scheme', 'http']);
});
