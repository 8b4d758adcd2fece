import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { compileRouteTable, stripPort } from '../src/route-table';
import { directResponse, exactPath, header, prefix, regexPath, route, routeTable, vhost } from './fixtures';

const ok = directResponse(200, 'ok');

/** Each vhost has one catch-all route named after the vhost, so the route name says which vhost won. */
const domains = compileRouteTable(
  routeTable('domains', [
    vhost('exact', ['api.example.com', 'reviews:9080'], [route('exact', ok)]),
    vhost('suffix-short', ['*.com'], [route('suffix-short', ok)]),
    vhost('suffix-long', ['*.example.com'], [route('suffix-long', ok)]),
    vhost('suffix-dash', ['*-canary.example.com'], [route('suffix-dash', ok)]),
    vhost('prefix-short', ['api.*'], [route('prefix-short', ok)]),
    vhost('prefix-long', ['api.internal.*'], [route('prefix-long', ok)]),
    vhost('bare', ['reviews', 'ratings.shop.svc.cluster.local'], [route('bare', ok)]),
    vhost('catch-all', ['*'], [route('catch-all', ok)]),
  ]),
);

const vhostCases: [host: string, expected: string][] = [
  ['api.example.com', 'exact'],
  ['API.Example.COM', 'exact'],
  ['www.example.com', 'suffix-long'],
  ['x-canary.example.com', 'suffix-dash'],
  ['foo.com', 'suffix-short'],
  ['api.local', 'prefix-short'],
  ['api.internal.local', 'prefix-long'],
  ['reviews:9080', 'exact'],
  ['reviews:1234', 'bare'],
  ['ratings.shop.svc.cluster.local:9080', 'bare'],
  ['www.example.com:8080', 'suffix-long'],
  ['elsewhere.org', 'catch-all'],
  ['elsewhere.org:80', 'catch-all'],
  ['', 'catch-all'],
];

for (const [host, expected] of vhostCases) {
  test(`host "${host}" selects virtual host ${expected}`, () => {
    const hit = domains.select({ host, method: 'GET', path: '/', headers: {} });
    assert.equal(hit?.route.name, expected);
    assert.equal(hit?.virtualHost.name, expected);
  });
}

test('a wildcard needs at least one character: "*.example.com" does not match ".example.com"', () => {
  const t = compileRouteTable(routeTable('t', [vhost('w', ['*.example.com'], [route('w', ok)])]));
  assert.equal(t.select({ host: '.example.com', method: 'GET', path: '/', headers: {} }), undefined);
  assert.equal(t.select({ host: 'a.example.com', method: 'GET', path: '/', headers: {} })?.route.name, 'w');
});

test('with no catch-all, an unknown host selects nothing and a host:port retries without the port', () => {
  const t = compileRouteTable(routeTable('t', [vhost('foo', ['foo'], [route('foo', ok)])]));
  assert.equal(t.select({ host: 'bar', method: 'GET', path: '/', headers: {} }), undefined);
  assert.equal(t.select({ host: 'foo:8080', method: 'GET', path: '/', headers: {} })?.route.name, 'foo');
  assert.equal(t.virtualHostFor('bar:1'), undefined);
});

test('stripPort removes only a trailing numeric port, IPv6 literals included', () => {
  assert.equal(stripPort('foo:80'), 'foo');
  assert.equal(stripPort('[::1]:80'), '[::1]');
  assert.equal(stripPort('[::1]'), '[::1]');
  assert.equal(stripPort('::1'), '::1');
  assert.equal(stripPort('foo'), 'foo');
  assert.equal(stripPort('foo:bar'), 'foo:bar');
});

const routes = compileRouteTable(
  routeTable('routes', [
    vhost('v', ['*'], [
      route('exact-health', ok, { path: exactPath('/health') }),
      route('regex-item', ok, { path: regexPath('/items/[0-9]+') }),
      route('canary', ok, { path: prefix('/api'), headers: [header.exact('x-canary', 'true')] }),
      route('not-mobile', ok, { path: prefix('/ui'), headers: [header.prefix('user-agent', 'Mobile', true)] }),
      route('debug-present', ok, { path: prefix('/debug'), headers: [header.present('x-debug')] }),
      route('debug-absent', ok, { path: prefix('/debug'), headers: [header.present('x-debug', false)] }),
      route('version-regex', ok, { path: prefix('/v'), headers: [header.regex('x-version', 'v[12]')] }),
      route('post-only', ok, { path: prefix('/write'), headers: [header.exact(':method', 'POST')] }),
      route('authority', ok, { path: prefix('/auth'), headers: [header.exact(':authority', 'auth.local:8080')] }),
      route('api', ok, { path: prefix('/api') }),
      route('last', ok, { path: prefix('/') }),
    ]),
  ]),
);

const routeCases: [desc: string, req: { path: string; method?: string; host?: string; headers?: IncomingHttpHeaders }, expected: string][] = [
  ['exact path matches itself', { path: '/health' }, 'exact-health'],
  ['exact path ignores the query string', { path: '/health?verbose=1' }, 'exact-health'],
  ['exact path does not match a longer path', { path: '/healthz' }, 'last'],
  ['regex path is a full match', { path: '/items/42' }, 'regex-item'],
  ['regex path does not match a partial', { path: '/items/42/reviews' }, 'last'],
  ['regex path ignores the query string', { path: '/items/7?x=1' }, 'regex-item'],
  ['header exact match picks the earlier route', { path: '/api/x', headers: { 'x-canary': 'true' } }, 'canary'],
  ['header exact mismatch falls through to a later route', { path: '/api/x', headers: { 'x-canary': 'false' } }, 'api'],
  ['an absent header fails an exact matcher', { path: '/api/x' }, 'api'],
  ['inverted prefix matcher matches a different value', { path: '/ui', headers: { 'user-agent': 'Desktop' } }, 'not-mobile'],
  ['inverted prefix matcher rejects the value it names', { path: '/ui', headers: { 'user-agent': 'Mobile Safari' } }, 'last'],
  ['inverted value matcher does not match an absent header (Envoy)', { path: '/ui' }, 'last'],
  ['present matcher matches a present header, even empty', { path: '/debug', headers: { 'x-debug': '' } }, 'debug-present'],
  ['present:false matches an absent header', { path: '/debug' }, 'debug-absent'],
  ['header regex is a full match', { path: '/v', headers: { 'x-version': 'v2' } }, 'version-regex'],
  ['header regex rejects a partial match', { path: '/v', headers: { 'x-version': 'v22' } }, 'last'],
  ['repeated header values are joined with a comma', { path: '/v', headers: { 'x-version': ['v1', 'v2'] } }, 'last'],
  [':method matches the request method', { path: '/write', method: 'POST' }, 'post-only'],
  [':method rejects another method', { path: '/write', method: 'GET' }, 'last'],
  [':authority matches the Host as received', { path: '/auth', host: 'auth.local:8080' }, 'authority'],
  ['prefix is case-sensitive', { path: '/API' }, 'last'],
  ['first match wins over a later, more specific-looking route', { path: '/api' }, 'api'],
];

for (const [desc, req, expected] of routeCases) {
  test(`route: ${desc}`, () => {
    const hit = routes.select({ host: req.host ?? 'any', method: req.method ?? 'GET', path: req.path, headers: req.headers ?? {} });
    assert.equal(hit?.route.name, expected);
  });
}

test('a vhost whose routes all miss selects nothing', () => {
  const t = compileRouteTable(routeTable('t', [vhost('v', ['*'], [route('only-api', ok, { path: prefix('/api') })])]));
  assert.equal(t.select({ host: 'x', method: 'GET', path: '/other', headers: {} }), undefined);
});

test('a global regex flag does not make matching depend on the previous request', () => {
  const re = /\/g[0-9]/g;
  const t = compileRouteTable(
    routeTable('t', [vhost('v', ['*'], [route('g', ok, { path: { kind: 'regex', value: re.source, re } })])]),
  );
  for (let i = 0; i < 3; i++) assert.equal(t.select({ host: 'x', method: 'GET', path: '/g1', headers: {} })?.route.name, 'g');
});

test('the first virtual host to list a domain owns it', () => {
  const t = compileRouteTable(routeTable('t', [vhost('first', ['dup'], [route('first', ok)]), vhost('second', ['dup'], [route('second', ok)])]));
  assert.equal(t.select({ host: 'dup', method: 'GET', path: '/', headers: {} })?.route.name, 'first');
});
