import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { MeshConfigError, parseMeshConfig } from '../src/mesh-config';

test('a full mesh config is read as written, with sampling defaulting to 1 percent', () => {
  assert.deepEqual(parseMeshConfig({ trustDomain: 'example.org', rootNamespace: 'mesh', tracing: { endpoint: 'http://otel:4318/v1/traces' }, defaultReach: ['shared', 'monitoring'] }, 'mesh.yaml'), {
    trustDomain: 'example.org', rootNamespace: 'mesh', tracing: { endpoint: 'http://otel:4318/v1/traces', samplingPercent: 1 }, defaultReach: ['shared', 'monitoring'],
  });
  assert.deepEqual(parseMeshConfig(null, 'empty'), {});
});

test('every bad field is named in one error, and unknown keys are refused', () => {
  assert.throws(() => parseMeshConfig({ trustDomian: 'x', rootNamespace: 'Bad_NS', tracing: { endpoint: 'otel:4318', sampling: 150 }, defaultReach: 'all' }, 'mesh.yaml'), (e: unknown) => {
    assert.ok(e instanceof MeshConfigError);
    for (const part of ['trustDomian: unknown field', 'rootNamespace: must be a namespace name', 'tracing.endpoint: must be an http', 'tracing.sampling: must be a percentage', 'defaultReach: must be a list']) {
      assert.ok(e.message.includes(part), `${e.message} names ${part}`);
    }
    return true;
  });
});
