/** JSON Patch generation (inject-patch.ts): each patch applies to the original with an independent applier and gives the target. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createJsonPatch, escapePointer } from '../src/inject-patch';
import { applyPatch } from './inject-fixtures';

const cases: [string, unknown, unknown][] = [
  ['equal documents', { a: 1, b: [1, 2] }, { a: 1, b: [1, 2] }],
  ['a new key with / and ~ in it', { metadata: { annotations: { x: '1' } } }, { metadata: { annotations: { x: '1', 'weft.dev/status': '{}', 'a~b': 'c' } } }],
  ['a missing parent object', { metadata: { name: 'p' } }, { metadata: { name: 'p', annotations: { 'weft.dev/status': '{}' } } }],
  ['items inserted before, between and after named items', { c: [{ name: 'a' }, { name: 'b' }] }, { c: [{ name: 'x' }, { name: 'a' }, { name: 'y' }, { name: 'b', v: 1 }, { name: 'z' }] }],
  ['a changed item in place', { c: [{ name: 'web', probe: { port: 8080 } }] }, { c: [{ name: 'web', probe: { port: 15021, path: '/app-health' } }] }],
  ['a removed key', { a: 1, b: 2 }, { a: 1 }],
  ['an array whose items were reordered (replaced whole)', { c: [{ name: 'a' }, { name: 'b' }] }, { c: [{ name: 'b' }, { name: 'a' }] }],
  ['scalars in arrays', { args: ['a', 'b'] }, { args: ['x', 'a', 'b', 'c'] }],
  ['a type change', { a: { b: 1 } }, { a: [1] }],
  ['a new array', { spec: { containers: [] } }, { spec: { containers: [], initContainers: [{ name: 'weft-init' }] } }],
];

describe('createJsonPatch', () => {
  for (const [name, from, to] of cases) {
    it(`${name}: the patch turns the original into the target`, () => {
      const ops = createJsonPatch(from, to);
      assert.deepEqual(applyPatch(from, ops), to);
      if (name === 'equal documents') assert.deepEqual(ops, []);
    });
  }

  it('escapes annotation keys as RFC 6901 says and adds rather than replaces what is new', () => {
    assert.equal(escapePointer('weft.dev/status'), 'weft.dev~1status');
    assert.equal(escapePointer('a~/b'), 'a~0~1b');
    assert.deepEqual(createJsonPatch({ metadata: { annotations: {} } }, { metadata: { annotations: { 'weft.dev/status': 's' } } }), [
      { op: 'add', path: '/metadata/annotations/weft.dev~1status', value: 's' },
    ]);
    // Inserting in front of kept items: adds at indices, never a whole-array replace that would undo another webhook's change.
    const ops = createJsonPatch({ c: [{ name: 'app' }] }, { c: [{ name: 'weft-init' }, { name: 'weft-proxy' }, { name: 'app' }] });
    assert.deepEqual(ops, [{ op: 'add', path: '/c/0', value: { name: 'weft-init' } }, { op: 'add', path: '/c/1', value: { name: 'weft-proxy' } }]);
  });
});
