/**
 * The `weft` command as a user meets it: the built CLI run as a child process. Help, bad flags,
 * bad environment and not-yet-available commands must each end in clear lines on stderr and the
 * documented exit status, never a stack trace. Also the flag parser's table of cases.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs, type FlagSpec } from '../src/args';
import { formatLiveLine, formatSummary, LoadStats } from '../src/demo-load';
import { UsageError } from '../src/errors';

const MAIN = join(__dirname, '..', 'src', 'main.js');

/** Runs `weft <args>` to completion with `env` replacing the environment's Weft variables. */
function weft(args: string[], env: Record<string, string | undefined> = {}): { code: number | null; stdout: string; stderr: string } {
  const base = { ...process.env };
  for (const k of ['WEFT_XDS_ADDRESS', 'POD_NAME', 'POD_NAMESPACE', 'POD_IP', 'SERVICE_ACCOUNT', 'WEFT_DEBUG']) delete base[k];
  const r = spawnSync(process.execPath, [MAIN, ...args], { env: { ...base, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');
const noStack = (s: string): void => assert.doesNotMatch(s, /^\s+at .+\(.*\)$|^\s+at /m, `stack trace in:\n${s}`);


describe('weft --help', () => {
  it('lists every command and exits 0', () => {
    const r = weft(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['demo', 'control-plane', 'sidecar', 'inject', 'proxy-status', 'proxy-config', 'check', 'trace', 'stat']) {
      assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'), `weft --help does not list ${cmd}`);
    }
    assert.equal(r.stderr, '');
  });

  it('gives every command its own --help, exit 0, even those not available yet', () => {
    for (const cmd of ['demo', 'control-plane', 'sidecar', 'inject', 'proxy-status', 'proxy-config', 'check', 'trace', 'stat']) {
      const r = weft([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: weft ${cmd}`), cmd);
      assert.match(r.stdout, /--help/);
    }
  });

  it('hides the internal --exit-with-parent flag from help', () => {
    assert.doesNotMatch(weft(['sidecar', '--help']).stdout, /exit-with-parent/);
  });
});

describe('bad input', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown flag', ['sidecar', '--bogus'], /^weft sidecar: unknown flag --bogus/],
    ['an unknown top-level flag', ['--bogus'], /^weft: unknown flag --bogus/],
    ['an unknown command', ['frobnicate'], /^weft: unknown command "frobnicate"/],
    ['no command', [], /^weft: missing command/],
    ['a flag without its value', ['demo', '--requests'], /^weft demo: --requests needs a value/],
    ['a malformed number', ['demo', '--requests', '12x'], /^weft demo: --requests must be a whole number/],
    ['a base address off loopback', ['demo', '--base-ip', '10.0.0'], /^weft demo: --base-ip must be/],
    ['a malformed address', ['control-plane', '--manifests', '.', '--xds-address', 'nope'], /^weft control-plane: --xds-address must be HOST:PORT/],
    ['a missing manifests dir', ['control-plane', '--manifests', '/no/such/dir'], /^weft control-plane: --manifests: no such directory/],
    ['no mode', ['control-plane'], /^weft control-plane: give --manifests DIR \(local mode\), --kubeconfig FILE or --in-cluster/],
    ['two modes', ['control-plane', '--manifests', '.', '--in-cluster'], /^weft control-plane: --manifests, --kubeconfig and --in-cluster exclude each other/],
    ['a missing kubeconfig', ['control-plane', '--kubeconfig', '/no/such/kubeconfig'], /^weft control-plane: --kubeconfig: no such file/],
    ['a kubeconfig that is not one', ['control-plane', '--kubeconfig', '/etc/hostname', '--no-ca', '--xds-address', '127.0.0.1:0', '--debug-address', '127.0.0.1:0'], /^weft control-plane: --kubeconfig \/etc\/hostname: /],
    ['in-cluster outside a pod', ['control-plane', '--in-cluster'], /^weft control-plane: --in-cluster: not running in a Kubernetes pod/],
    ['a Kubernetes flag in local mode', ['control-plane', '--manifests', '.', '--namespace', 'x'], /^weft control-plane: --namespace is for Kubernetes mode/],
    ['a CA certificate without its key', ['control-plane', '--manifests', '.', '--ca-cert', 'c.pem'], /^weft control-plane: --ca-cert and --ca-key go together/],
    ['a data dir inside the manifests', ['control-plane', '--manifests', '.', '--data-dir', './data'], /^weft control-plane: --data-dir .* is inside the manifests directory/],
    ['a lifetime without a unit', ['control-plane', '--manifests', '.', '--cert-ttl', '5'], /^weft control-plane: --cert-ttl must be a positive duration/],
    ['a tracing endpoint that is not a URL', ['control-plane', '--manifests', '.', '--tracing-endpoint', 'collector:4318'], /^weft control-plane: --tracing-endpoint must be an http:\/\/ or https:\/\/ URL/],
    ['a sampling percentage above 100', ['control-plane', '--manifests', '.', '--tracing-endpoint', 'http://127.0.0.1:4318/v1/traces', '--tracing-sampling', '150'], /^weft control-plane: --tracing-sampling must be a percentage from 0 to 100, got "150"/],
    ['a sampling percentage without an endpoint', ['control-plane', '--manifests', '.', '--tracing-sampling', '5'], /^weft control-plane: --tracing-sampling needs --tracing-endpoint/],
    ['a trace id that is not 32 hex digits', ['trace', 'abc'], /^weft trace: TRACE_ID must be 32 hex digits/],
    ['identity flags with --no-ca', ['control-plane', '--manifests', '.', '--no-ca', '--rotate-root'], /^weft control-plane: --rotate-root cannot be combined with --no-ca/],
    ['a bad port override', ['sidecar', '--admin-port', '70000'], /^weft sidecar: --admin-port must be between 0 and 65535/],
  ];
  for (const [what, args, expected] of cases) {
    it(`reports ${what} in one line on stderr, exit 2, no stack`, () => {
      const env = args[0] === 'sidecar' ? { WEFT_XDS_ADDRESS: '127.0.0.1:1', POD_NAME: 'p', POD_NAMESPACE: 'n', POD_IP: '127.0.0.1' } : {};
      const r = weft(args, env);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, expected);
      noStack(r.stderr);
      assert.equal(r.stdout, '');
    });
  }

  it('reports each problem with the sidecar environment on its own line, non-zero', () => {
    const r = weft(['sidecar']);
    assert.notEqual(r.code, 0);
    const got = lines(r.stderr);
    for (const v of ['WEFT_XDS_ADDRESS', 'POD_NAME', 'POD_NAMESPACE', 'POD_IP']) {
      assert.equal(got.filter((l) => new RegExp(`\\b${v}\\b`).test(l)).length, 1, `${v} in:\n${r.stderr}`);
    }
    for (const l of got) assert.match(l, /^weft sidecar: /);
    noStack(r.stderr);
  });

  it('reports a malformed WEFT_XDS_ADDRESS', () => {
    const r = weft(['sidecar'], { WEFT_XDS_ADDRESS: 'nope', POD_NAME: 'p', POD_NAMESPACE: 'n', POD_IP: '127.0.0.1' });
    assert.equal(r.code, 2);
    assert.deepEqual(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /WEFT_XDS_ADDRESS/);
  });
});

describe('weft check', () => {
  it('--pre without --kubeconfig is refused with one line and exit 2', () => {
    const r = weft(['check', '--pre']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^weft check: --pre checks a Kubernetes cluster before install: give --kubeconfig FILE \(see weft check --help\)\n$/);
  });
});

describe('weft control-plane lifecycle', () => {

  /** Starts a local-mode control plane on free ports; resolves once it logs that it serves. */
  function startCp(extra: string[]): { child: ReturnType<typeof spawn>; up: Promise<void>; dir: string } {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cli-test-'));
    // The CA's data dir beside, not inside, the manifests (and not in the user's ~/.local/state).
    const child = spawn(process.execPath, [MAIN, 'control-plane', '--manifests', dir, '--data-dir', `${dir}-data`, '--xds-address', '127.0.0.1:0', '--debug-address', '127.0.0.1:0', ...extra], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    const up = new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('control plane serving')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before serving:\n${err}`)));
    });
    return { child, up, dir };
  }
  const exitOf = (child: ReturnType<typeof spawn>): Promise<number | null> =>
    new Promise((resolve) => child.once('exit', (code) => resolve(code)));

  it('closes gracefully on SIGTERM and exits 0', { timeout: 20_000 }, async () => {
    const { child, up, dir } = startCp([]);
    try {
      await up;
      const exited = exitOf(child);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with --exit-with-parent, exits when its stdin closes', { timeout: 20_000 }, async () => {
    const { child, up, dir } = startCp(['--exit-with-parent']);
    try {
      await up;
      const exited = exitOf(child);
      child.stdin?.end();
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('weft control-plane on a taken port', () => {
  it('says which address is taken, in one line, and exits 1', { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cli-test-'));
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const r = weft(['control-plane', '--manifests', dir, '--data-dir', `${dir}-data`, '--xds-address', `127.0.0.1:${port}`, '--debug-address', '127.0.0.1:0'], { WEFT_LOG_LEVEL: 'silent' });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `weft control-plane: cannot listen on 127.0.0.1:${port} (xDS): address already in use (EADDRINUSE)\n`);
    } finally {
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseArgs', () => {
  const specs: FlagSpec[] = [
    { name: 'manifests', type: 'string', placeholder: 'DIR', help: '' },
    { name: 'verbose', type: 'boolean', help: '' },
    { name: 'filename', short: 'f', type: 'string', help: '' },
  ];
  const ok: [string[], Record<string, string | boolean>, string[]][] = [
    [['--manifests', 'd'], { manifests: 'd' }, []],
    [['--manifests=d'], { manifests: 'd' }, []],
    [['--manifests=a=b'], { manifests: 'a=b' }, []],
    [['--verbose'], { verbose: true }, []],
    [['--verbose=false'], { verbose: false }, []],
    [['-f', 'x.yaml'], { filename: 'x.yaml' }, []],
    [['-f', '-'], { filename: '-' }, []],
    [['pos', '--verbose'], { verbose: true }, ['pos']],
    [['--', '--verbose'], {}, ['--verbose']],
    [['--manifests', 'a', '--manifests', 'b'], { manifests: 'b' }, []],
  ];
  for (const [argv, flags, positionals] of ok) {
    it(`parses ${JSON.stringify(argv)}`, () => {
      const r = parseArgs(argv, specs, 1);
      assert.deepEqual(Object.fromEntries(r.flags), flags);
      assert.deepEqual(r.positionals, positionals);
    });
  }
  const bad: [string[], RegExp][] = [
    [['--nope'], /unknown flag --nope/],
    [['-x'], /unknown flag -x/],
    [['--manifests'], /--manifests needs a value \(DIR\)/],
    [['--manifests', '--verbose'], /--manifests needs a value/],
    [['--manifests='], /non-empty/],
    [['--verbose=yes'], /true\|false/],
    [['a', 'b'], /unexpected argument "b"/],
  ];
  for (const [argv, message] of bad) {
    it(`rejects ${JSON.stringify(argv)} with a UsageError`, () => {
      assert.throws(() => parseArgs(argv, specs, 1), (err: unknown) => err instanceof UsageError && message.test(err.message));
    });
  }
  it('knows --help and -h on every command', () => {
    assert.equal(parseArgs(['--help'], []).help, true);
    assert.equal(parseArgs(['-h'], []).help, true);
  });
});

describe('the demo tally', () => {
  it('computes the live shares and rate over the last 5 complete seconds only', () => {
    const t0 = 1_700_000_000_000;
    const stats = new LoadStats(t0);
    // Seconds 0..9 after t0: v1 only up to second 4, then 80% v1 / 20% v2, 10 per second.
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < 10; i++) {
        stats.add(s < 5 || i < 8 ? { version: 'v1' } : { version: 'v2' }, t0 + s * 1000 + i);
      }
    }
    stats.add({ failure: 'HTTP 503' }, t0 + 9_500);
    const line = formatLiveLine(stats, t0 + 10_200); // window: seconds 5..9
    assert.match(line, /^requests 101  errors 1 /);
    assert.match(line, /last 5 s: v1 80\.0%  v2 20\.0%  10 req\/s$/);
  });

  it('summarises counts, shares and failures by reason', () => {
    const stats = new LoadStats();
    for (let i = 0; i < 9; i++) stats.add({ version: 'v1' });
    stats.add({ version: 'v2' });
    stats.add({ failure: 'ECONNRESET' });
    const out = formatSummary(stats);
    assert.match(out, /^11 requests in .*: 10 succeeded, 1 failed$/m);
    assert.match(out, /^ {2}backend v1 +9 +90\.0%$/m);
    assert.match(out, /^ {2}backend v2 +1 +10\.0%$/m);
    assert.match(out, /1 × ECONNRESET/);
  });
});
