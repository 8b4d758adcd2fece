import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteAppProbes } from '../src/inject-probes';

const web = (probes: Record<string, unknown>): Record<string, unknown> => ({
  name: 'web',
  image: 'web:1',
  ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }],
  ...probes,
});

test('HTTP, TCP and gRPC probes are pointed at the sidecar, keeping their timing; the originals go to WEFT_APP_PROBES with named ports resolved', () => {
  const spec = {
    containers: [
      web({
        livenessProbe: { httpGet: { path: '/live', port: 'http', httpHeaders: [{ name: 'x-probe', value: '1' }] }, periodSeconds: 5, failureThreshold: 3 },
        readinessProbe: { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
        startupProbe: { grpc: { port: 'grpc', service: 'web' }, initialDelaySeconds: 1 },
      }),
      { name: 'weft-proxy', readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 } } },
    ],
  };
  const original = JSON.stringify(spec);
  const r = rewriteAppProbes(spec);
  assert.equal(JSON.stringify(spec), original, 'the input is not changed');
  const c = r.spec.containers[0];
  assert.deepEqual(c.livenessProbe, { periodSeconds: 5, failureThreshold: 3, httpGet: { path: '/app-health/web/livez', port: 15021, scheme: 'HTTP' } });
  assert.deepEqual(c.readinessProbe, { timeoutSeconds: 2, httpGet: { path: '/app-health/web/readyz', port: 15021, scheme: 'HTTP' } });
  assert.deepEqual(c.startupProbe, { initialDelaySeconds: 1, httpGet: { path: '/app-health/web/startupz', port: 15021, scheme: 'HTTP' } });
  assert.deepEqual(r.spec.containers[1], spec.containers[1], "the sidecar's own probe stays");
  // With Kubernetes' defaults filled in (scheme HTTP, timeoutSeconds 1), as the webhook sees them.
  assert.deepEqual(JSON.parse(r.appProbes!), {
    '/app-health/web/livez': { httpGet: { path: '/live', port: 8080, httpHeaders: [{ name: 'x-probe', value: '1' }], scheme: 'HTTP' }, timeoutSeconds: 1 },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
    '/app-health/web/startupz': { grpc: { port: 9090, service: 'web' }, timeoutSeconds: 1 },
  });
  assert.deepEqual(r.problems, []);
});

test('exec probes, pods without probes and the opt-out annotation are left alone; an unknown named port is reported and left', () => {
  const exec = { containers: [web({ livenessProbe: { exec: { command: ['true'] } } })] };
  assert.deepEqual(rewriteAppProbes(exec), { spec: exec, appProbes: undefined, problems: [] });
  const none = { containers: [web({})] };
  assert.equal(rewriteAppProbes(none).spec, none);
  const http = { containers: [web({ readinessProbe: { httpGet: { path: '/', port: 8080 } } })] };
  assert.equal(rewriteAppProbes(http, { annotations: { 'weft.dev/rewrite-app-probes': 'false' } }).appProbes, undefined);
  const unknown = { containers: [web({ readinessProbe: { httpGet: { path: '/', port: 'admin' } } })] };
  const r = rewriteAppProbes(unknown);
  assert.equal(r.appProbes, undefined);
  assert.match(r.problems[0]!, /container web readinessProbe: port "admin" is not a port of the container/);
});

test('two containers get separate paths; a custom health port is used', () => {
  const spec = { containers: [web({ readinessProbe: { httpGet: { path: '/', port: 8080 } } }), { name: 'worker', readinessProbe: { tcpSocket: { port: 7000 } } }] };
  const r = rewriteAppProbes(spec, { healthPort: 25021 });
  assert.deepEqual(Object.keys(JSON.parse(r.appProbes!)), ['/app-health/web/readyz', '/app-health/worker/readyz']);
  assert.equal(r.spec.containers[1].readinessProbe.httpGet.port, 25021);
});
