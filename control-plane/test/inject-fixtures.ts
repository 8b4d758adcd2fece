/**
 * Shared by the injector tests: the admission fixtures directory, golden-file comparison
 * (`UPDATE_GOLDEN=1` rewrites the files instead of comparing) and a small RFC 6902 applier written
 * independently of control-plane/src/inject-patch.ts, to check that the webhook's patches apply
 * to the object the API server sent.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ADMISSION_DIR = join(__dirname, '..', '..', 'test', 'fixtures', 'admission');
export const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';

/** Compares `actual` with the golden file byte for byte (or rewrites it under UPDATE_GOLDEN=1). */
export function golden(file: string, actual: string): void {
  const path = join(ADMISSION_DIR, file);
  if (UPDATE_GOLDEN) {
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `golden file ${file} is missing: run with UPDATE_GOLDEN=1 and review it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${file} differs from the golden file (UPDATE_GOLDEN=1 rewrites it)`);
}

export function readFixture(file: string): any {
  return JSON.parse(readFileSync(join(ADMISSION_DIR, file), 'utf8'));
}

/** RFC 6901 pointer → tokens. */
function tokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`bad pointer ${pointer}`);
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Applies add/remove/replace/test ops to a deep copy of `doc`, failing as RFC 6902 says (a missing parent, an index out of range). */
export function applyPatch(doc: unknown, ops: readonly { op: string; path: string; value?: unknown }[]): unknown {
  let root: any = structuredClone(doc);
  for (const op of ops) {
    const t = tokens(op.path);
    if (t.length === 0) {
      if (op.op === 'add' || op.op === 'replace') root = structuredClone(op.value);
      else throw new Error(`${op.op} of the whole document`);
      continue;
    }
    let parent: any = root;
    for (const k of t.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(k)] : parent?.[k];
      if (parent === undefined || parent === null || typeof parent !== 'object') throw new Error(`${op.op} ${op.path}: the parent does not exist`);
    }
    const last = t[t.length - 1]!;
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!/^(\d+|-)$/.test(last) || i > parent.length || (op.op !== 'add' && i >= parent.length)) throw new Error(`${op.op} ${op.path}: index out of range`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'replace') parent[i] = structuredClone(op.value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else throw new Error(`unsupported op ${op.op}`);
    } else {
      const has = Object.prototype.hasOwnProperty.call(parent, last);
      if (op.op === 'add') parent[last] = structuredClone(op.value);
      else if (op.op === 'replace') {
        if (!has) throw new Error(`replace ${op.path}: no such member`);
        parent[last] = structuredClone(op.value);
      } else if (op.op === 'remove') {
        if (!has) throw new Error(`remove ${op.path}: no such member`);
        delete parent[last];
      } else throw new Error(`unsupported op ${op.op}`);
    }
  }
  return root;
}
