/**
 * `x-request-id` values for requests that arrive without one. Unique, shaped as a version-4 UUID
 * (36 characters, what logs and tools expect), and cheap: a random 108-bit prefix drawn once per
 * 65,536 ids, then a 16-bit counter as the last four hex digits. `randomUUID` costs a
 * serialization of 16 random bytes per request; this costs one short number-to-hex.
 *
 * Unique: within a block the counter differs; across blocks and processes the random prefix does
 * (a collision needs two equal 108-bit draws). Not secret: an id seen lets one guess the other ids
 * of its block. A request id is a correlation handle, never a credential (Envoy's own is a UUID
 * for the same purpose); trace ids stay fully random (trace-*.ts).
 */
import { randomBytes } from 'node:crypto';

const BLOCK = 0x10000;
let prefix = '';
let next = BLOCK;

/** The next request id: `xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxcccc` (Y in 8–b, c the counter). */
export function requestId(): string {
  if (next === BLOCK) {
    prefix = freshPrefix();
    next = 0;
  }
  return prefix + (BLOCK + next++).toString(16).slice(1);
}

/** 32 hex digits of a v4 UUID without its last four: random bits, version 4, variant 10xx. */
function freshPrefix(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 28)}`;
}
