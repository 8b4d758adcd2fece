/**
 * Path and Host normalization (docs/http-safety.md, "Path normalization"): tables for the pure
 * functions, then end to end — what route matching sees is what the upstream is sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeHost, normalizePath, requestTarget } from '../src/path-normalize';
import { InvalidPathError, MalformedRequestError } from '../src/proxy-errors';
import { cluster, directResponse, listener, prefix, proxyConfig, route, routeTable, startUpstream, vhost } from './fixtures';
import { rawExchange, startStrictProxy } from './http-safety-fixtures';

const normalized: [input: string, output: string][] = [
  ['/', '/'],
  ['/a/b/c', '/a/b/c'],
  ['/a/./b/../c', '/a/c'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/..', '/'],
  ['/../../etc/passwd', '/etc/passwd'],
  ['/api/../admin', '/admin'],
  ['/a/.../b', '/a/.../b'],
  ['/a/..b/c', '/a/..b/c'],
  ['//admin', '/admin'],
  ['/a///b//', '/a/b/'],
  ['/a//../b', '/a/b'],
  ['/%61dmin', '/admin'],
  ['/%41%42%7e%2d%2E%5f', '/AB~-._'],
  ['/a/%2e%2e/admin', '/admin'],
  ['/a/%2E/b', '/a/b'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/a%3ab', '/a%3Ab'],
  ['/a%25b', '/a%25b'],
  ['/a%2561', '/a%2561'],
  ['/a;b=c/d', '/a;b=c/d'],
  ['/ADMIN', '/ADMIN'],
  ['/a:b@c!$&\'()*+,;=', '/a:b@c!$&\'()*+,;='],
];

for (const [input, output] of normalized) {
  test(`normalizePath ${JSON.stringify(input)} → ${JSON.stringify(output)}`, () => {
    assert.equal(normalizePath(input), output);
  });
}

const refused: [input: string, reason: string][] = [
  ['a/b', 'path-not-origin-form'],
  ['', 'path-not-origin-form'],
  ['/a#b', 'path-fragment'],
  ['/a\\b', 'path-backslash'],
  ['/a%2Fb', 'path-escaped-slash'],
  ['/a%2fb', 'path-escaped-slash'],
  ['/a%5Cb', 'path-escaped-slash'],
  ['/a%5cb', 'path-escaped-slash'],
  ['/a%00', 'path-escaped-nul'],
  ['/a%', 'path-percent-encoding'],
  ['/a%4', 'path-percent-encoding'],
  ['/a%g1', 'path-percent-encoding'],
  ['/a/..;/admin', 'path-dot-segment-parameter'],
  ['/a/.;x/admin', 'path-dot-segment-parameter'],
  ['/a/%2e%2e;/admin', 'path-dot-segment-parameter'],
  ['/a b', 'path-character'],
  ['/a\u00e9', 'path-character'],
];

for (const [input, reason] of refused) {
  test(`normalizePath refuses ${JSON.stringify(input)} (${reason})`, () => {
    const r = normalizePath(input);
    assert.ok(r instanceof InvalidPathError);
    assert.equal(r.reason, reason);
    assert.equal(r.status, 400);
    assert.equal(r.code, 'INVALID_PATH');
  });
}

test('normalizeHost: lower case, trailing dot removed (with or without a port), invalid characters refused', () => {
  assert.equal(normalizeHost('Reviews.Shop.SVC.cluster.local'), 'reviews.shop.svc.cluster.local');
  assert.equal(normalizeHost('admin.example.'), 'admin.example');
  assert.equal(normalizeHost('Admin.Example.:8080'), 'admin.example:8080');
  assert.equal(normalizeHost('[::1]:80'), '[::1]:80');
  assert.equal(normalizeHost(''), '');
  for (const bad of ['a b', 'a/b', 'a\\b', 'a"b', 'a\tb']) {
    const r = normalizeHost(bad);
    assert.ok(r instanceof MalformedRequestError, bad);
    assert.equal(r.reason, 'host-invalid');
  }
});

test('requestTarget: query kept byte for byte, OPTIONS *, absolute-form outbound only, userinfo refused', () => {
  assert.equal((requestTarget('/a/../b?x=%2F&y=/../#', 'App.', 'GET', 'inbound') as InvalidPathError).reason, 'path-fragment');
  assert.deepEqual(requestTarget('/a/../b?x=%2F&y=/../', 'App.', 'GET', 'inbound'), { host: 'app', path: '/b?x=%2F&y=/../' });
  assert.deepEqual(requestTarget('*', 'app', 'OPTIONS', 'inbound'), { host: 'app', path: '*' });
  assert.equal((requestTarget('*', 'app', 'GET', 'inbound') as InvalidPathError).reason, 'path-asterisk');
  assert.deepEqual(requestTarget('http://App.Shop./x/./y?q', 'other', 'GET', 'outbound'), { host: 'app.shop', path: '/x/y?q' });
  assert.deepEqual(requestTarget('HTTP://app.shop?q=1', undefined, 'GET', 'outbound'), { host: 'app.shop', path: '/?q=1' });
  assert.equal((requestTarget('http://app.shop/x', 'app', 'GET', 'inbound') as InvalidPathError).reason, 'path-absolute-form');
  assert.equal((requestTarget('http://user@app.shop/x', 'app', 'GET', 'outbound') as InvalidPathError).reason, 'authority-userinfo');
  assert.equal((requestTarget('ftp://app.shop/x', 'app', 'GET', 'outbound') as InvalidPathError).reason, 'path-not-origin-form');
});

test('end to end: /api/../admin, //admin and /%61dmin reach the /admin route as /admin; /ADMIN does not (case-sensitive); %2F and Host case/dot tricks do not bypass', async (t) => {
  const admin = await startUpstream('admin');
  const app = await startUpstream('app');
  // The admin route sends to its own upstream; a `deny.local` host denies /admin outright.
  const config = proxyConfig({
    routeTables: [
      routeTable('outbound', [
        vhost('deny', ['deny.local'], [route('deny-admin', directResponse(403, 'denied'), { path: prefix('/admin') }), route('rest', 'app')]),
        vhost('all', ['*'], [route('admin', 'admin', { path: prefix('/admin') }), route('rest', 'app')]),
      ]),
    ],
    clusters: [cluster('admin'), cluster('app')],
    endpoints: { admin: [admin.endpoint()], app: [app.endpoint()] },
  });
  const proxy = await startStrictProxy(config, listener('outbound'));
  t.after(() => Promise.all([proxy.close(), admin.close(), app.close()]));
  const get = async (path: string, host = 'svc'): Promise<number> => {
    const r = await rawExchange(proxy.port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    return r.statuses[0] ?? 0;
  };

  for (const path of ['/admin/users', '/api/../admin/users', '//admin/users', '/%61dmin/users', '/./admin//users', '/x/%2E%2E/admin/users']) {
    assert.equal(await get(path), 200, path);
  }
  assert.deepEqual(
    admin.received.map((r) => r.url),
    Array(6).fill('/admin/users'),
  );

  assert.equal(await get('/ADMIN/users'), 200);
  assert.equal(app.received.at(-1)!.url, '/ADMIN/users', 'case is kept: /ADMIN is not /admin (Envoy case_sensitive default)');

  for (const path of ['/public%2F..%2Fadmin', '/public%5C..%5Cadmin', '/public/..;/admin', '/public#/../admin', '/public\\..\\admin']) {
    assert.equal(await get(path), 400, path);
  }

  for (const host of ['deny.local', 'DENY.LOCAL', 'Deny.Local.', 'deny.local.:80']) {
    assert.equal(await get('/admin', host), 403, host);
    assert.equal(await get('/api/../admin', host), 403, host);
  }
  assert.equal(admin.received.length, 6);
});
