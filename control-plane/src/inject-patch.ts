/**
 * RFC 6902 JSON Patch from an original document to a changed one: what the mutating webhook
 * returns (the API server applies it to the object it sent). Generated for the changes the
 * injector makes and applying cleanly on the original:
 * - objects: `add` for new keys (a missing parent object is added whole), `replace` for changed
 *   scalars, `remove` for dropped keys;
 * - arrays: when the original's items appear in order in the new array (matched by `name`, or
 *   equal), the new items are `add`ed at their index and the kept ones patched in place, so other
 *   webhooks' additions are not overwritten; otherwise the array is replaced whole.
 * Keys are escaped as RFC 6901 says (`~` → `~0`, `/` → `~1`: `weft.dev~1status`).
 */
export type PatchOp =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The operations turning `from` into `to` (both decoded JSON); `[]` when they are equal. */
export function createJsonPatch(from: unknown, to: unknown): PatchOp[] {
  const ops: PatchOp[] = [];
  diff(from, to, '', ops);
  return ops;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function diff(a: unknown, b: unknown, path: string, ops: PatchOp[]): void {
  if (isObj(a) && isObj(b)) return diffObject(a, b, path, ops);
  if (Array.isArray(a) && Array.isArray(b)) return diffArray(a, b, path, ops);
  if (!deepEqual(a, b)) ops.push({ op: 'replace', path, value: b });
}

function diffObject(a: Obj, b: Obj, path: string, ops: PatchOp[]): void {
  for (const k of Object.keys(a)) {
    if (a[k] !== undefined && b[k] === undefined) ops.push({ op: 'remove', path: `${path}/${escapePointer(k)}` });
  }
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const p = `${path}/${escapePointer(k)}`;
    if (a[k] === undefined) ops.push({ op: 'add', path: p, value: v });
    else diff(a[k], v, p, ops);
  }
}

const nameOf = (v: unknown): unknown => (isObj(v) ? v.name : undefined);
const sameItem = (x: unknown, y: unknown): boolean => (nameOf(x) !== undefined ? nameOf(x) === nameOf(y) : deepEqual(x, y));

function diffArray(a: unknown[], b: unknown[], path: string, ops: PatchOp[]): void {
  // Walk the new array; each add happens after the earlier ones, so index i is where it lands.
  const local: PatchOp[] = [];
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    if (j < a.length && sameItem(a[j], b[i])) {
      diff(a[j], b[i], `${path}/${i}`, local);
      j++;
    } else {
      local.push({ op: 'add', path: `${path}/${i}`, value: b[i] });
    }
  }
  if (j < a.length) ops.push({ op: 'replace', path, value: b });
  else ops.push(...local);
}

export function deepEqual(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (Array.isArray(x) && Array.isArray(y)) return x.length === y.length && x.every((v, i) => deepEqual(v, y[i]));
  if (isObj(x) && isObj(y)) {
    const kx = Object.keys(x).filter((k) => x[k] !== undefined);
    const ky = Object.keys(y).filter((k) => y[k] !== undefined);
    return kx.length === ky.length && kx.every((k) => deepEqual(x[k], y[k]));
  }
  return false;
}
