// Runs open-loop-client.mjs in its own Node process at a fixed rate and returns its
// percentiles (ms, from the scheduled send time). See that file for what is measured.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { start } from './procs.mjs';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'open-loop-client.mjs');

export async function runOpenLoop({ mode = 'h1', url, host, authority, path, rate = 1000, seconds = 10, warmupSeconds = 1 }) {
  const p = start('open-loop client', process.execPath, [CLIENT, JSON.stringify({ mode, url, host, authority, path, rate, seconds, warmupSeconds })], {
    capture: true,
    pdeathsig: false,
    stdinPipe: true,
  });
  const { code } = await p.done;
  const line = p.out.trim().split('\n').at(-1);
  if (code !== 0 || !line) throw new Error(`open-loop client exited ${code}: ${p.err}`);
  return JSON.parse(line);
}
