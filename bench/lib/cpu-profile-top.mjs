// Reads a V8 .cpuprofile (from `node --cpu-prof`) and prints the functions with the most
// self time, merged by function/file/line, as a share of the busy samples (not "(idle)"). Used by the bench's
// --profile mode; also runnable alone: node bench/lib/cpu-profile-top.mjs FILE [N].
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function topSelfTime(file, n = 25) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const counts = new Map();
  for (const id of prof.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  const merged = new Map();
  let total = 0;
  for (const [id, c] of counts) {
    const f = byId.get(id).callFrame;
    if (f.functionName === '(idle)') continue;
    total += c;
    const where = f.url ? `${f.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    merged.set(key, (merged.get(key) ?? 0) + c);
  }
  const rows = [...merged].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { total, rows: rows.map(([fn, c]) => ({ fn, pct: (100 * c) / total })) };
}

export function printTop(file, n = 25) {
  const { total, rows } = topSelfTime(file, n);
  console.log(`\n${file} (${total} busy samples): top self time, % of busy`);
  for (const r of rows) console.log(`  ${r.pct.toFixed(1).padStart(5)}%  ${r.fn}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printTop(process.argv[2], Number(process.argv[3] ?? 25));
