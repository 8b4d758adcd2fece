/**
 * `npm run gen:crds`: writes the CRDs (`crd-define.ts`) to `manifests/crds/`, the identical files
 * to the Helm chart's `charts/weft/crds/`, and the schema tables of docs/configuration.md
 * (`crd-doc.ts`). `--check` writes nothing and exits 1 when a checked-in file differs or is
 * missing, naming it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { crdDocuments } from './crd-define';
import { withSchemaTables } from './crd-doc';

/** Where the generated files go, relative to the repository root. */
export const CRD_DIRS = ['manifests/crds', 'charts/weft/crds'] as const;
/** The page whose schema tables are generated (between markers). */
export const CRD_DOC = 'docs/configuration.md';

/** The repository root: api/dist/src/ → three levels up. */
export const REPO_ROOT = join(__dirname, '..', '..', '..');

/** The files whose content differs from what the generator makes (relative paths). */
export function staleCrdFiles(root = REPO_ROOT): string[] {
  const stale: string[] = [];
  for (const dir of CRD_DIRS) {
    for (const { name, text } of crdDocuments()) {
      const path = join(root, dir, name);
      let have: string | undefined;
      try {
        have = readFileSync(path, 'utf8');
      } catch {
        have = undefined;
      }
      if (have !== text) stale.push(relative(root, path));
    }
  }
  const doc = readFileSync(join(root, CRD_DOC), 'utf8');
  if (withSchemaTables(doc) !== doc) stale.push(CRD_DOC);
  return stale;
}

export function writeCrdFiles(root = REPO_ROOT): string[] {
  const written: string[] = [];
  for (const dir of CRD_DIRS) {
    mkdirSync(join(root, dir), { recursive: true });
    for (const { name, text } of crdDocuments()) {
      writeFileSync(join(root, dir, name), text);
      written.push(join(dir, name));
    }
  }
  const doc = readFileSync(join(root, CRD_DOC), 'utf8');
  const updated = withSchemaTables(doc);
  if (updated !== doc) writeFileSync(join(root, CRD_DOC), updated);
  written.push(CRD_DOC);
  return written;
}

if (require.main === module) {
  if (process.argv.includes('--check')) {
    const stale = staleCrdFiles();
    if (stale.length > 0) {
      console.error(`out of date: ${stale.join(', ')}; run: npm run gen:crds`);
      process.exit(1);
    }
  } else {
    for (const f of writeCrdFiles()) console.log(`wrote ${f}`);
  }
}
