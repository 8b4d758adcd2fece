/**
 * `weft inject -f`: multi-document Kubernetes YAML in, the same YAML out with every Pod and pod
 * template injected by the webhook's own function (inject-pod.ts). Documents that are not
 * injected (other kinds, opted-out, already injected) are copied byte for byte, comments and all;
 * an injected document is written anew (its comments are lost). Pod templates are found where
 * the workload kinds keep them: `spec.template` (Deployment, StatefulSet, DaemonSet, ReplicaSet,
 * Job, ReplicationController) and `spec.jobTemplate.spec.template` (CronJob); the items of a `v1`
 * `List` (what `kubectl get -o yaml` prints for several objects) are injected one by one.
 */
import { parseAllDocuments, stringify } from 'yaml';
import type { InjectionConfig } from './inject-config';
import { InjectError } from './inject-errors';
import { injectPod } from './inject-pod';

type Obj = Record<string, any>;

/** Where each kind keeps its pod (an empty path: the object is the pod). */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  'v1/Pod': [],
  'v1/ReplicationController': ['spec', 'template'],
  'apps/v1/Deployment': ['spec', 'template'],
  'apps/v1/StatefulSet': ['spec', 'template'],
  'apps/v1/DaemonSet': ['spec', 'template'],
  'apps/v1/ReplicaSet': ['spec', 'template'],
  'batch/v1/Job': ['spec', 'template'],
  'batch/v1/CronJob': ['spec', 'jobTemplate', 'spec', 'template'],
};

/** A document that cannot be read or injected; `line` is 1-based in the input. */
export class ManifestInjectError extends InjectError {
  override readonly code = 'MANIFEST_INJECT_FAILED';
  constructor(message: string, readonly line?: number) {
    super(message);
  }
}

export interface DocumentReport {
  /** 1-based position of the document in the input. */
  readonly index: number;
  /** `Kind namespace/name`. */
  readonly object: string;
  readonly outcome: 'injected' | 'skipped' | 'not a workload';
  readonly reason?: string;
  readonly warnings?: readonly string[];
}

/**
 * Injects every pod and pod template of `text`. Throws `ManifestInjectError` (invalid YAML, with
 * its line and column; or a pod the injector refuses) and writes nothing partial: the caller
 * gets the whole output or an error.
 */
export function injectManifests(text: string, config: InjectionConfig): { output: string; documents: DocumentReport[] } {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) return { output: text, documents: [] }; // an empty stream
  for (const d of docs) {
    const e = d.errors[0];
    if (e) {
      const pos = e.linePos?.[0];
      const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new ManifestInjectError(`${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${what}`, pos?.line);
    }
  }
  const reports: DocumentReport[] = [];
  let output = '';
  docs.forEach((doc, i) => {
    const start = i === 0 ? 0 : doc.range[0];
    const end = i + 1 < docs.length ? docs[i + 1]!.range[0] : text.length;
    const source = text.slice(start, end);
    const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
    const replaced = injectDocument(raw, i + 1, config, reports);
    if (replaced === undefined) {
      output += source;
      return;
    }
    const marker = /^---[ \t]*\r?\n/.exec(source.slice(doc.range[0] - start))?.[0] ?? '';
    output += (i === 0 ? '' : marker || '---\n') + stringify(replaced, { lineWidth: 0, aliasDuplicateObjects: false });
  });
  return { output, documents: reports };
}

/** The injected document, or `undefined` to keep it as it is. */
function injectDocument(raw: unknown, index: number, config: InjectionConfig, reports: DocumentReport[]): Obj | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const doc = raw as Obj;
  // `kubectl get -o yaml` of several objects: a v1 List whose items are injected one by one.
  if (doc.apiVersion === 'v1' && doc.kind === 'List' && Array.isArray(doc.items)) {
    let changed = false;
    const items = doc.items.map((item: unknown) => {
      const injected = injectDocument(item, index, config, reports);
      changed ||= injected !== undefined;
      return injected ?? item;
    });
    return changed ? { ...doc, items } : undefined;
  }
  const meta: Obj = doc.metadata ?? {};
  const object = `${doc.kind ?? '?'} ${meta.namespace ?? 'default'}/${meta.name ?? meta.generateName ?? '?'}`;
  const path = TEMPLATE_PATHS[`${doc.apiVersion}/${doc.kind}`];
  if (!path) {
    reports.push({ index, object, outcome: 'not a workload' });
    return undefined;
  }
  const template = path.reduce<any>((o, k) => (o && typeof o === 'object' ? o[k] : undefined), doc);
  if (!template || typeof template !== 'object' || Array.isArray(template)) {
    throw new ManifestInjectError(`document ${index} (${object}): no pod template at ${path.join('.') || 'the top level'}`);
  }
  const out = injectPod(template, meta.namespace ?? 'default', config);
  if (out.kind === 'refused') throw new ManifestInjectError(`document ${index} (${object}): injection refused: ${out.reason}`);
  if (out.kind === 'skipped') {
    reports.push({ index, object, outcome: 'skipped', reason: out.reason });
    return undefined;
  }
  reports.push({ index, object, outcome: 'injected', ...(out.warnings.length ? { warnings: out.warnings } : {}) });
  return setIn(doc, path, out.pod);
}

function setIn(o: Obj, path: readonly string[], value: Obj): Obj {
  if (path.length === 0) return value;
  const [k, ...rest] = path as [string, ...string[]];
  return { ...o, [k]: setIn(o[k], rest, value) };
}
