/**
 * HPACK against RFC 7541 Appendix C: every example decodes to the listed header lists with the
 * listed dynamic table sizes, across the consecutive blocks that share one table; the encoder
 * reproduces the Huffman request examples (C.4) octet for octet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder } from '../src/hpack-decoder';
import { HpackEncoder } from '../src/hpack-encoder';
import { huffmanDecode, huffmanEncode, huffmanLength } from '../src/hpack-huffman';
import { hex } from './hpack-fixtures';


interface Step {
  readonly block: string;
  readonly headers: readonly string[];
  /** The dynamic table's size after the block (octets) and its entry count. */
  readonly size: number;
  readonly entries: number;
}

function decodeSeries(maxTableSize: number, steps: readonly Step[]): void {
  const decoder = new HpackDecoder({ maxTableSize });
  steps.forEach((step, i) => {
    assert.deepEqual(decoder.decode(hex(step.block)), step.headers, `block ${i + 1}`);
    const { size, entries } = decoder.tableSize;
    assert.deepEqual({ size, entries }, { size: step.size, entries: step.entries }, `table after block ${i + 1}`);
  });
}

test('C.2.1 literal with indexing adds custom-key: custom-header to the table (55 octets)', () => {
  decodeSeries(4096, [{ block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', headers: ['custom-key', 'custom-header'], size: 55, entries: 1 }]);
});

test('C.2.2 literal without indexing and C.2.3 never indexed leave the table empty; C.2.4 indexed :method GET', () => {
  decodeSeries(4096, [{ block: '040c 2f73 616d 706c 652f 7061 7468', headers: [':path', '/sample/path'], size: 0, entries: 0 }]);
  decodeSeries(4096, [{ block: '1008 7061 7373 776f 7264 0673 6563 7265 74', headers: ['password', 'secret'], size: 0, entries: 0 }]);
  decodeSeries(4096, [{ block: '82', headers: [':method', 'GET'], size: 0, entries: 0 }]);
});

const REQUESTS = [
  [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'],
  [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache'],
  [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value'],
];

test('C.3 three requests without Huffman share the dynamic table', () => {
  decodeSeries(4096, [
    { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', headers: REQUESTS[0]!, size: 57, entries: 1 },
    { block: '8286 84be 5808 6e6f 2d63 6163 6865', headers: REQUESTS[1]!, size: 110, entries: 2 },
    { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', headers: REQUESTS[2]!, size: 164, entries: 3 },
  ]);
});

const C4 = [
  '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
  '8286 84be 5886 a8eb 1064 9cbf',
  '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
];

test('C.4 three requests with Huffman share the dynamic table', () => {
  decodeSeries(4096, [
    { block: C4[0]!, headers: REQUESTS[0]!, size: 57, entries: 1 },
    { block: C4[1]!, headers: REQUESTS[1]!, size: 110, entries: 2 },
    { block: C4[2]!, headers: REQUESTS[2]!, size: 164, entries: 3 },
  ]);
});

test('the encoder writes the C.4 requests octet for octet: repeats indexed, new fields indexed, strings Huffman-coded', () => {
  const encoder = new HpackEncoder();
  REQUESTS.forEach((headers, i) => assert.equal(encoder.encode(headers).toString('hex'), hex(C4[i]!).toString('hex'), `request ${i + 1}`));
});

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSES = [
  [':status', '302', 'cache-control', 'private', 'date', DATE1, 'location', 'https://www.example.com'],
  [':status', '307', 'cache-control', 'private', 'date', DATE1, 'location', 'https://www.example.com'],
  [':status', '200', 'cache-control', 'private', 'date', DATE2, 'location', 'https://www.example.com', 'content-encoding', 'gzip', 'set-cookie', COOKIE],
];

test('C.5 three responses without Huffman in a 256-octet table evict the oldest entries', () => {
  decodeSeries(256, [
    {
      block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
              2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      headers: RESPONSES[0]!, size: 222, entries: 4,
    },
    { block: '4803 3330 37c1 c0bf', headers: RESPONSES[1]!, size: 222, entries: 4 },
    {
      block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
              54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
              5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      headers: RESPONSES[2]!, size: 215, entries: 3,
    },
  ]);
});

test('C.6 three responses with Huffman in a 256-octet table evict the same entries', () => {
  decodeSeries(256, [
    {
      block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
              2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      headers: RESPONSES[0]!, size: 222, entries: 4,
    },
    { block: '4883 640e ffc1 c0bf', headers: RESPONSES[1]!, size: 222, entries: 4 },
    {
      block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
              77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
              9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      headers: RESPONSES[2]!, size: 215, entries: 3,
    },
  ]);
});

test('the encoder in a 256-octet table round-trips the C.6 responses through a decoder of the same size', () => {
  const encoder = new HpackEncoder({ maxTableSize: 256 });
  const decoder = new HpackDecoder({ maxTableSize: 256 });
  const blocks = RESPONSES.map((headers) => encoder.encode(headers));
  blocks.forEach((block, i) => assert.deepEqual(decoder.decode(block), RESPONSES[i]));
  // The first block starts with the size update to 256 (001 11111, 256 - 31 = 225 in 7-bit groups).
  assert.equal(blocks[0]!.subarray(0, 3).toString('hex'), '3fe101');
  // The repeat is shorter: `:status 302` and `cache-control: private` were indexed the first time.
  const again = encoder.encode(RESPONSES[0]!);
  assert.deepEqual(decoder.decode(again), RESPONSES[0]);
  assert.ok(again.length < blocks[0]!.length - 10, `${again.length} octets, first time ${blocks[0]!.length}`);
});

test('Huffman: every octet value round-trips, and the RFC examples encode to the listed lengths', () => {
  const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  const dst = Buffer.alloc(1024);
  const end = huffmanEncode(all, dst, 0);
  assert.equal(end, huffmanLength(all));
  const out = Buffer.alloc(2048);
  const n = huffmanDecode(dst, 0, end, out);
  assert.equal(out.subarray(0, n).toString('latin1'), all);
  assert.equal(huffmanLength('www.example.com'), 12);
  assert.equal(huffmanLength('no-cache'), 6);
  assert.equal(huffmanLength(COOKIE), 45);
  assert.equal(huffmanLength('\u0100'), -1);
});
