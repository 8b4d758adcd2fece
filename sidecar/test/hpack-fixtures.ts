/** Shared helpers of the hpack-*.test.ts files. */

/** Octets from spaced hex, as RFC 7541's examples print them. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** xorshift32: reproducible random choices; `r(n)` is an integer in [0, n). Tests print the seed. */
export function rng(seed: number): (n: number) => number {
  let x = seed || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}
