/**
 * One manifest file's text → its Kubernetes objects and diagnostics, each with the 1-based line
 * it came from, and many files' documents → one consistent object list. YAML syntax errors skip
 * only the document they are in; `v1 List` documents are opened up into their items. Used by
 * `registry-files.ts`.
 */
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Document } from 'yaml';
import { objectKey, parseKubeObject, type KubeObject, type Logger } from '@weft/api';

/** A problem with one document (or a whole file, without `line`). `file` is relative to the directory. */
export interface Diagnostic {
  readonly file: string;
  readonly line?: number;
  readonly severity: 'error' | 'warning';
  readonly reason: string;
}

export type LoadedDocument =
  | { readonly kind: 'object'; readonly object: KubeObject; readonly line: number; readonly warning?: Diagnostic }
  | { readonly kind: 'ignored'; readonly line: number; readonly reason: string; readonly warning?: Diagnostic }
  | { readonly kind: 'diagnostic'; readonly diagnostic: Diagnostic };

type Key = string | number;

/**
 * Parses every document of `text` (YAML or JSON; `file` is only used in diagnostics and logs).
 * Never throws. Objects come in document order. `line` is where the document (or `List` item)
 * starts, past leading comments. An invalid document yields one error diagnostic (all its
 * errors, each naming its field path, joined by "; "); an accepted TrafficPolicy
 * with fields this version does not enforce yields a warning. Ignored kinds are logged at debug.
 */
export function loadManifestFile(file: string, text: string, log: Logger): LoadedDocument[] {
  const out: LoadedDocument[] = [];
  const lines = new LineCounter();
  const error = (line: number | undefined, reason: string): void => {
    out.push({ kind: 'diagnostic', diagnostic: { file, ...(line !== undefined ? { line } : {}), severity: 'error', reason } });
  };
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter: lines });
  } catch (err) {
    error(undefined, `cannot parse file: ${err instanceof Error ? err.message : String(err)}`);
    return out;
  }
  for (const doc of docs) {
    const start = lines.linePos((doc.contents ?? doc).range?.[0] ?? 0).line;
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      error(e.linePos?.[0].line ?? start, `YAML syntax error: ${e.message.split('\n')[0].replace(/:$/, '')}`);
      continue;
    }
    if (doc.contents === null) continue; // an empty document, e.g. after a trailing `---`
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      error(start, `cannot decode YAML: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    if (value === null || value === undefined) continue;
    const where = (keys: readonly Key[]): number => lineOf(doc, keys, lines, start);
    if (isList(value)) value.items.forEach((item, i) => out.push(load(file, item, ['items', i], where, log)));
    else out.push(load(file, value, [], where, log));
  }
  return out;
}

/** One file's documents, as `loadManifestFile` returned them. */
export interface LoadedFile {
  readonly rel: string;
  readonly docs: readonly LoadedDocument[];
}

/**
 * Puts the files' documents together into one object list and its diagnostics. Pure.
 * Objects are ordered file by file, document by document; of two objects with the same
 * kind/namespace/name the first wins and the second is an error naming both places. It keeps
 * the last good version of what a broken file held: while a file has a document that cannot be
 * used, the objects it contributed last time (`previous`, this function's `byFile` of the last
 * call) that no valid document provides now stay in effect, at the position of its first bad
 * document, so a bad edit never takes down what was working (as a rejected `kubectl apply`
 * leaves the old object in place).
 */
export function assembleObjects(
  files: readonly LoadedFile[],
  problems: readonly Diagnostic[],
  previous: ReadonlyMap<string, readonly KubeObject[]>,
): { objects: KubeObject[]; diagnostics: Diagnostic[]; byFile: Map<string, readonly KubeObject[]> } {
  const produced = new Set<string>();
  for (const f of files) for (const d of f.docs) if (d.kind === 'object') produced.add(objectKey(d.object));
  const objects: KubeObject[] = [];
  const diagnostics: Diagnostic[] = [...problems];
  const byFile = new Map<string, readonly KubeObject[]>();
  const firstSeen = new Map<string, string>();
  for (const { rel, docs } of files) {
    const mine: KubeObject[] = [];
    let retained = false;
    for (const doc of docs) {
      if (doc.kind === 'ignored') {
        if (doc.warning) diagnostics.push(doc.warning);
        continue;
      }
      if (doc.kind === 'diagnostic') {
        let d = doc.diagnostic;
        const keep = retained ? [] : (previous.get(rel) ?? []).filter((o) => !produced.has(objectKey(o)) && !firstSeen.has(objectKey(o)));
        retained = true;
        if (keep.length > 0) {
          const what = keep.map((o) => `${o.kind} ${o.meta.namespace}/${o.meta.name}`).join(', ');
          d = { ...d, reason: `${d.reason}; until this file is fixed, its last valid ${what} stays in effect` };
          for (const o of keep) firstSeen.set(objectKey(o), `${rel} (last valid version)`);
          mine.push(...keep);
        }
        diagnostics.push(d);
        continue;
      }
      const key = objectKey(doc.object);
      const where = `${rel}:${doc.line}`;
      const first = firstSeen.get(key);
      if (first !== undefined) {
        const o = doc.object;
        const reason = `duplicate ${o.kind} ${o.meta.namespace}/${o.meta.name}: defined at ${first} (kept) and at ${where} (skipped)`;
        diagnostics.push({ file: rel, line: doc.line, severity: 'error', reason });
        continue;
      }
      firstSeen.set(key, where);
      mine.push(doc.object);
      if (doc.warning) diagnostics.push(doc.warning);
    }
    byFile.set(rel, mine);
    objects.push(...mine);
  }
  return { objects, diagnostics, byFile };
}

function load(file: string, raw: unknown, base: readonly Key[], where: (keys: readonly Key[]) => number, log: Logger): LoadedDocument {
  const line = where(base);
  const outcome = parseKubeObject(raw);
  switch (outcome.kind) {
    case 'ignored':
      log.debug('document ignored', { file, line, reason: outcome.reason });
      return outcome.warn
        ? { kind: 'ignored', line, reason: outcome.reason, warning: { file, line, severity: 'warning', reason: outcome.reason } }
        : { kind: 'ignored', line, reason: outcome.reason };
    case 'invalid':
      return { kind: 'diagnostic', diagnostic: { file, line, severity: 'error', reason: outcome.errors.join('; ') } };
    case 'object': {
      const o = outcome.value;
      if (o.kind !== 'TrafficPolicy' || o.notYetSupported.length === 0) return { kind: 'object', object: o, line };
      const reason = `TrafficPolicy ${o.meta.namespace}/${o.meta.name}: accepted, but this version does not enforce ${o.notYetSupported.join(', ')}`;
      return { kind: 'object', object: o, line, warning: { file, line, severity: 'warning', reason } };
    }
  }
}

function isList(v: unknown): v is { items: unknown[] } {
  const o = v as Record<string, unknown>;
  return typeof v === 'object' && v !== null && o.apiVersion === 'v1' && o.kind === 'List' && Array.isArray(o.items);
}

/** The line of the deepest node along `keys` that exists (a mapping entry's key line), else `fallback`. */
function lineOf(doc: Document.Parsed, keys: readonly Key[], lines: LineCounter, fallback: number): number {
  let node: unknown = doc.contents;
  let line = fallback;
  for (const key of keys) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(key));
      if (pair === undefined) break;
      const range = isScalar(pair.key) ? pair.key.range : undefined;
      if (range) line = lines.linePos(range[0]).line;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
      node = node.items[key];
      const range = (node as { range?: [number, number, number] }).range;
      if (range) line = lines.linePos(range[0]).line;
    } else {
      break;
    }
  }
  return line;
}
