/**
 * `weft demo` end to end, as `npm start` runs it: a real control plane and three real sidecars
 * as child processes, traffic through them, the 90/10 split observed, and nothing left behind —
 * after a normal exit, after Ctrl-C, and after the demo itself is SIGKILLed. Each test uses its
 * own base address so the files can run in parallel with others.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

const MAIN = join(__dirname, '..', 'src', 'main.js');

interface Run {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches `re` (rejects if the demo exits first). */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
}

function demo(args: string[]): Run {
  const child = spawn(process.execPath, [MAIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    waiters.forEach((w) => w());
  });
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out);
          if (m) resolve(m);
        };
        waiters.push(check);
        check();
        void exited.then((code) => reject(new Error(`demo exited (${code}) before ${re}:\n${out}\n${err}`)));
      }),
  };
}

/** True when something accepts TCP connections on host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Every address:port the demo's processes bind for base `base`. */
function demoPorts(base: string): [string, number][] {
  const ports: [string, number][] = [[`${base}.1`, 15010]];
  for (const octet of [11, 21, 22]) for (const port of [15000, 15001, 15006, 15020, 15021, 8080]) ports.push([`${base}.${octet}`, port]);
  return ports;
}

/** Resolves once nothing listens on any demo port; rejects after `ms`. */
async function allClosed(base: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const open: string[] = [];
    for (const [h, p] of demoPorts(base)) if (await listening(h, p)) open.push(`${h}:${p}`);
    if (open.length === 0) return;
    if (Date.now() > deadline) throw new Error(`still listening after ${ms} ms: ${open.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const tempDirOf = (out: string): string => (/temp dir (\S+) /.exec(out) ?? [])[1] ?? assert.fail(`no temp dir in:\n${out}`);

describe('weft demo', () => {
  it('sends 400 requests split about 90/10, exits 0 and leaves nothing behind', { timeout: 90_000 }, async () => {
    const run = demo(['--requests', '400', '--base-ip', '127.0.77']);
    try {
      const code = await run.exited;
      const out = run.stdout();
      assert.equal(code, 0, `exit ${code}\n${out}\n${run.stderr()}`);
      assert.match(out, /400 requests in .*: 400 succeeded, 0 failed/);
      const v1 = /backend v1\s+(\d+)\s+([\d.]+)%/.exec(out);
      const v2 = /backend v2\s+(\d+)\s+([\d.]+)%/.exec(out);
      assert.ok(v1 && v2, out);
      assert.equal(Number(v1[1]) + Number(v2[1]), 400);
      const share = Number(v1[2]);
      assert.ok(share >= 84 && share <= 96, `v1 share ${share}% is not 90±6%:\n${out}`);
      assert.equal(existsSync(tempDirOf(out)), false, 'temp dir left behind');
      await allClosed('127.0.77', 1000);
    } finally {
      run.child.kill('SIGKILL');
    }
  });

  it('stops everything on Ctrl-C in live mode and exits 0', { timeout: 90_000 }, async () => {
    const run = demo(['--base-ip', '127.0.76']);
    try {
      await run.waitFor(/To change the split, edit the weights in\n\s+(\S+backend-traffic-policy\.yaml)/);
      await run.waitFor(/requests \d+\s+errors 0/); // non-TTY: a live line every 5 s
      run.child.kill('SIGINT');
      assert.equal(await run.exited, 0, run.stderr());
      assert.match(run.stdout(), /backend v1\s+\d+/);
      assert.equal(existsSync(tempDirOf(run.stdout())), false, 'temp dir left behind');
      await allClosed('127.0.76', 1000);
    } finally {
      run.child.kill('SIGKILL');
    }
  });

  it('takes its children down with it even when SIGKILLed', { timeout: 90_000 }, async () => {
    const run = demo(['--base-ip', '127.0.75']);
    try {
      await run.waitFor(/To change the split/);
      run.child.kill('SIGKILL');
      await run.exited;
      // The children notice their stdin closing and exit on their own.
      await allClosed('127.0.75', 8000);
    } finally {
      run.child.kill('SIGKILL');
      // Nobody was left to remove the temp dir (the next demo sweeps such dirs); tidy up here.
      const dir = /temp dir (\S+) /.exec(run.stdout())?.[1];
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
});
