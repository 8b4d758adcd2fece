/** InjectionConfig (`--injection-config`): defaults, overrides, and every bad value refused with its path. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_INJECTION_CONFIG, injectionConfigFromText, loadInjectionConfig, parseInjectionConfig } from '../src/inject-config';
import { InjectionConfigError } from '../src/inject-errors';

describe('InjectionConfig', () => {
  it('an empty file gives the contract defaults', () => {
    const c = injectionConfigFromText('', 'empty.yaml');
    assert.deepEqual(c, DEFAULT_INJECTION_CONFIG);
    assert.equal(c.image, 'ghcr.io/weft-dev/weft:0.1.0');
    assert.equal(c.xdsAddress, 'weft-control-plane.weft-system.svc:15012');
    assert.equal(c.proxyUid, 1337);
    assert.equal(c.nativeSidecar, true);
    assert.deepEqual(c.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '192Mi' } });
    assert.ok(Object.isFrozen(c.resources.requests), 'the value is immutable');
  });

  it('reads YAML and JSON; a section given replaces that section only', () => {
    const y = injectionConfigFromText('image: registry.local/weft:dev\nnativeSidecar: false\nresources: {limits: {memory: 256Mi}}\ncapture: {excludeOutboundPorts: "5432, 6379"}\n', 'c.yaml');
    assert.equal(y.image, 'registry.local/weft:dev');
    assert.equal(y.nativeSidecar, false);
    assert.deepEqual(y.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });
    assert.equal(y.capture.excludeOutboundPorts, '5432,6379');
    assert.equal(y.capture.inboundPorts, '*');
    const j = injectionConfigFromText('{"proxyUid": 2000, "logLevel": "debug", "drainTimeoutMs": 0, "resources": {"requests": {"cpu": 1}}}', 'c.json');
    assert.equal(j.proxyUid, 2000);
    assert.equal(j.logLevel, 'debug');
    assert.equal(j.drainTimeoutMs, 0);
    assert.equal(j.resources.requests.cpu, '1');
  });

  const bad: [string, unknown, RegExp][] = [
    ['an unknown field', { imag: 'x' }, /^imag: unknown field$/],
    ['an unknown nested field', { resources: { requests: { gpu: '1' } } }, /^resources\.requests\.gpu: unknown field$/],
    ['a bad pull policy', { imagePullPolicy: 'Sometimes' }, /^imagePullPolicy: must be one of Always, IfNotPresent, Never$/],
    ['an address without a port', { xdsAddress: 'weft-control-plane' }, /^xdsAddress: must be host:port$/],
    ['uid 0', { proxyUid: 0 }, /^proxyUid: must be an integer between 1 and/],
    ['a string boolean', { nativeSidecar: 'yes' }, /^nativeSidecar: must be true or false$/],
    ['a bad quantity', { initResources: { limits: { memory: '64 MB' } } }, /^initResources\.limits\.memory: "64 MB" is not a Kubernetes quantity/],
    ['a bad capture port', { capture: { excludeInboundPorts: '22,0' } }, /^capture\.excludeInboundPorts: "0" is not a port/],
    ['an empty include (capture-init cannot capture nothing)', { capture: { inboundPorts: '' } }, /^capture\.inboundPorts: must be "\*" or a list/],
    ['a star exclusion', { capture: { excludeOutboundCidrs: '*' } }, /^capture\.excludeOutboundCidrs: "\*" is not allowed/],
    ['an IPv6 CIDR', { capture: { outboundCidrs: 'fd00::/8' } }, /^capture\.outboundCidrs: "fd00::\/8" is not an IPv4 address or CIDR/],
    ['a bad log level', { logLevel: 'verbose' }, /^logLevel: must be one of debug, info, warn, error, silent$/],
  ];
  for (const [name, raw, message] of bad) {
    it(`refuses ${name}`, () => {
      const r = parseInjectionConfig(raw);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.errors.some((e) => message.test(e)), `${JSON.stringify(!r.ok && r.errors)} has no line matching ${message}`);
    });
  }

  it('reports every problem at once, and names the file', () => {
    assert.throws(() => injectionConfigFromText('proxyUid: -1\nlogLevel: loud\n', '/etc/weft/injection/config.yaml'), (e: InjectionConfigError) =>
      e.code === 'INJECTION_CONFIG_INVALID' && e.problems.length === 2 && /^\/etc\/weft\/injection\/config\.yaml: proxyUid: .* \(and 1 more\)$/.test(e.message));
    assert.throws(() => injectionConfigFromText('image: [unclosed\n', 'c.yaml'), /^InjectionConfigError: c\.yaml: not valid YAML or JSON: /);
    assert.throws(() => injectionConfigFromText('- a list\n', 'c.yaml'), /c\.yaml: must be a mapping of InjectionConfig fields/);
  });

  it('loads from a file, and says so when it is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-injcfg-'));
    writeFileSync(join(dir, 'config.yaml'), 'trustDomain: example.org\n');
    assert.equal((await loadInjectionConfig(join(dir, 'config.yaml'))).trustDomain, 'example.org');
    await assert.rejects(loadInjectionConfig(join(dir, 'nope.yaml')), /--injection-config .*nope\.yaml: no such file/);
  });
});
