/**
 * Transparent capture: the iptables rules (tables of options → rules), and for real, inside
 * Linux network namespaces joined by a veth pair: an app's connection is redirected to the
 * sidecar's port with its original destination recoverable, the sidecar's own uid is not
 * captured, and applying twice or cleaning up leaves the table as expected. The namespace tests
 * need root and `ip`; elsewhere they skip with the reason printed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { captureRules, DEFAULT_CAPTURE, validateCapture, type CaptureOptions } from '../src/capture-iptables';

const rules = (o: Partial<CaptureOptions> = {}): string[] => captureRules({ ...DEFAULT_CAPTURE, ...o }).split('\n').filter((l) => l.startsWith('-A'));

describe('capture rules', () => {
  test('by default: all inbound TCP but the sidecar ports to 15006, all outbound TCP but the proxy uid and loopback to 15001', () => {
    assert.deepEqual(rules(), [
      '-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
      '-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
      '-A PREROUTING -p tcp -j WEFT_INBOUND',
      ...[15000, 15001, 15006, 15020, 15021].map((p) => `-A WEFT_INBOUND -p tcp --dport ${p} -j RETURN`),
      '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
      '-A OUTPUT -p tcp -j WEFT_OUTPUT',
      '-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -o lo -j RETURN',
      '-A WEFT_OUTPUT -j WEFT_REDIRECT',
    ]);
  });

  test('include and exclude lists become RETURN rules before the redirects', () => {
    const r = rules({ inboundPorts: [8080, 9090], excludeInboundPorts: [22], outboundCidrs: ['10.96.0.0/12'], excludeOutboundCidrs: ['10.96.0.1/32'], excludeOutboundPorts: [5432], proxyGid: 1337 });
    assert.ok(r.includes('-A WEFT_INBOUND -p tcp --dport 22 -j RETURN'));
    assert.ok(r.includes('-A WEFT_INBOUND -p tcp --dport 8080 -j WEFT_IN_REDIRECT'));
    assert.ok(!r.includes('-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT'));
    assert.ok(r.indexOf('-A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN') < r.indexOf('-A WEFT_OUTPUT -d 10.96.0.0/12 -j WEFT_REDIRECT'));
    assert.ok(r.indexOf('-A WEFT_OUTPUT -d 10.96.0.1/32 -j RETURN') < r.indexOf('-A WEFT_OUTPUT -d 10.96.0.0/12 -j WEFT_REDIRECT'));
    assert.ok(r.includes('-A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN'));
  });

  test('bad options are reported one line each', () => {
    assert.deepEqual(validateCapture({ ...DEFAULT_CAPTURE, proxyUid: -1, inboundPorts: [0], excludeOutboundCidrs: ['10.0.0.0/33', 'nope'] }), [
      'proxy uid: -1 is not a uid',
      'inbound ports: 0 is not a port (1-65535)',
      'excluded outbound CIDRs: "10.0.0.0/33" is not an IPv4 CIDR',
      'excluded outbound CIDRs: "nope" is not an IPv4 CIDR',
    ]);
  });
});

const netnsSkip = ((): string | false => {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    execFileSync('iptables-restore', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'ip (iproute2) or iptables is missing';
  }
  return false;
})();
if (netnsSkip) console.log(`# skipping network-namespace capture tests: ${netnsSkip}`);

const NS_APP = `weft-cap-app-${process.pid}`;
const NS_PEER = `weft-cap-peer-${process.pid}`;
const sh = (...args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8' });
const inNs = (ns: string, ...args: string[]): string => sh('ip', 'netns', 'exec', ns, ...args);
const SIDECAR_DIST = path.join(__dirname, '..', 'src');

/** Runs a node script inside `ns` (optionally as `uid`); resolves with its stdout when it exits. */
function nodeIn(ns: string, script: string, uid?: number): Promise<string> {
  const prefix = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out.trim());
      else reject(new Error(`exit ${code}: ${err.trim()}`));
    });
  });
}

describe('capture in network namespaces', { skip: netnsSkip }, () => {
  before(() => {
    for (const ns of [NS_APP, NS_PEER]) sh('ip', 'netns', 'add', ns);
    sh('ip', 'link', 'add', 'wcap0', 'netns', NS_APP, 'type', 'veth', 'peer', 'name', 'wcap1', 'netns', NS_PEER);
    inNs(NS_APP, 'ip', 'addr', 'add', '10.250.9.2/24', 'dev', 'wcap0');
    inNs(NS_PEER, 'ip', 'addr', 'add', '10.250.9.3/24', 'dev', 'wcap1');
    for (const [ns, dev] of [[NS_APP, 'wcap0'], [NS_PEER, 'wcap1']] as const) {
      inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
      inNs(ns, 'ip', 'link', 'set', dev, 'up');
    }
  });
  after(() => {
    for (const ns of [NS_APP, NS_PEER]) {
      try { sh('ip', 'netns', 'del', ns); } catch { /* already gone */ }
    }
  });

  const apply = `require(${JSON.stringify(path.join(SIDECAR_DIST, 'capture-iptables.js'))}).applyCapture(require(${JSON.stringify(path.join(SIDECAR_DIST, 'capture-iptables.js'))}).DEFAULT_CAPTURE).catch((e) => { console.error(e.message); process.exit(1); })`;

  test('applying the rules twice leaves one set; cleanup removes them all', async () => {
    await nodeIn(NS_APP, apply);
    await nodeIn(NS_APP, apply);
    const listed = inNs(NS_APP, 'iptables', '-t', 'nat', '-S');
    assert.equal(listed.split('\n').filter((l) => l === '-A OUTPUT -p tcp -j WEFT_OUTPUT').length, 1, listed);
    assert.equal(listed.split('\n').filter((l) => l === '-A PREROUTING -p tcp -j WEFT_INBOUND').length, 1, listed);
    await nodeIn(NS_APP, `require(${JSON.stringify(path.join(SIDECAR_DIST, 'capture-iptables.js'))}).removeCapture()`);
    assert.doesNotMatch(inNs(NS_APP, 'iptables', '-t', 'nat', '-S'), /WEFT_/);
  });

  test('an app\'s connection is redirected to 15001 with its original destination; the proxy uid goes straight out', async () => {
    await nodeIn(NS_APP, apply);
    // The real server on the peer pod.
    const peer = spawn('ip', ['netns', 'exec', NS_PEER, process.execPath, '-e',
      `require('net').createServer((c) => c.end('peer')).listen(8080, '10.250.9.3', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => peer.stdout.once('data', r));
    try {
      // In the app pod: a stand-in sidecar on 15001 reports where each captured connection was going.
      const script = `
        const net = require('net');
        const { originalDestination } = require(${JSON.stringify(path.join(SIDECAR_DIST, 'original-dst.js'))});
        const server = net.createServer((c) => { const d = originalDestination(c); c.end(d ? d.address + ':' + d.port : 'none'); })
          .listen(15001, '0.0.0.0', () => {
            const c = net.connect(8080, '10.250.9.3');
            let got = ''; c.on('data', (d) => (got += d)); c.on('end', () => { console.log(got); server.close(); });
          });`;
      assert.equal(await nodeIn(NS_APP, script), '10.250.9.3:8080');
      // The proxy's own uid is not captured: it reaches the peer itself.
      const direct = `const c = require('net').connect(8080, '10.250.9.3'); let got = ''; c.on('data', (d) => (got += d)); c.on('end', () => console.log(got));`;
      assert.equal(await nodeIn(NS_APP, direct, 1337), 'peer');
    } finally {
      peer.kill('SIGKILL');
    }
  });

  test('inbound connections to an app port are redirected to 15006, but the sidecar\'s own ports are not', async () => {
    await nodeIn(NS_APP, apply);
    const script = `
      const net = require('net');
      const { originalDestination } = require(${JSON.stringify(path.join(SIDECAR_DIST, 'original-dst.js'))});
      const inbound = net.createServer((c) => { const d = originalDestination(c); c.end('inbound ' + (d ? d.address + ':' + d.port : 'none')); }).listen(15006, '0.0.0.0');
      const health = net.createServer((c) => c.end('health')).listen(15021, '0.0.0.0', () => console.log('up'));
      setTimeout(() => { inbound.close(); health.close(); }, 4000);`;
    const app = spawn('ip', ['netns', 'exec', NS_APP, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => app.stdout.once('data', r));
    const ask = (port: number): Promise<string> => nodeIn(NS_PEER, `const c = require('net').connect(${port}, '10.250.9.2'); let got = ''; c.on('data', (d) => (got += d)); c.on('end', () => console.log(got));`);
    try {
      assert.equal(await ask(8080), 'inbound 10.250.9.2:8080');
      assert.equal(await ask(15021), 'health');
    } finally {
      app.kill('SIGKILL');
    }
  });
});
