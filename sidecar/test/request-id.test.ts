import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestId } from '../src/request-id';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('generated x-request-id values are UUID-shaped (version 4, RFC variant) and never repeat, across blocks of the counter', () => {
  const seen = new Set<string>();
  // 200,000 ids cross three refreshes of the random prefix (one per 65,536).
  for (let i = 0; i < 200_000; i++) {
    const id = requestId();
    if (i % 997 === 0) assert.match(id, UUID_V4);
    seen.add(id);
  }
  assert.equal(seen.size, 200_000);
  const prefixes = new Set([...seen].map((id) => id.slice(0, 32)));
  assert.ok(prefixes.size >= 3, `${prefixes.size} prefixes`);
});
