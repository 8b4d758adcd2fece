import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { supportsNativeSidecars } from '../src/kube-version';

test('native sidecars from Kubernetes 1.29, managed clusters\' "29+" minors included', () => {
  const cases: [string, string, boolean][] = [['1', '28', false], ['1', '28+', false], ['1', '29', true], ['1', '29+', true], ['1', '37', true], ['2', '0', true], ['', '', false]];
  for (const [major, minor, want] of cases) assert.equal(supportsNativeSidecars({ major, minor }), want, `${major}.${minor}`);
});
