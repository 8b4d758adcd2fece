/**
 * The local-mode registry (`weft control-plane --manifests DIR`): every `*.yaml|*.yml|*.json`
 * under DIR, parsed into Kubernetes objects, re-read when the directory changes. An invalid
 * document is reported (file, line, reason) and skipped; everything valid still applies, and
 * what a file held before a bad edit stays in effect until the file is fixed.
 */
import { promises as fsp, watch, type FSWatcher, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { KubeObject, Logger } from '@weft/api';
import { assembleObjects, loadManifestFile, type Diagnostic, type LoadedFile } from './manifests-load';

export type { Diagnostic } from './manifests-load';

/** One consistent reading of the directory. `generation` counts the distinct snapshots published. */
export interface FilesSnapshot {
  /** In file order (files sorted by path), then document order: callers use it as age when objects lack a creationTimestamp. */
  readonly objects: readonly KubeObject[];
  readonly diagnostics: readonly Diagnostic[];
  readonly generation: number;
}

export interface FilesRegistryOptions {
  /** How often to compare the files' mtimes and sizes, in case fs.watch misses a change. Default 300. */
  readonly pollIntervalMs?: number;
  /** How long to wait after a change before reloading, so one save is one reload. Default 50. */
  readonly debounceMs?: number;
}

interface ScannedFile {
  readonly rel: string;
  readonly abs: string;
}

interface Scan {
  readonly files: readonly ScannedFile[];
  readonly dirs: readonly string[];
  readonly problems: readonly Diagnostic[];
  /** Changes whenever a manifest file or directory is added, removed, or changes size or mtime. */
  readonly fingerprint: string;
}

const MANIFEST = /\.(ya?ml|json)$/i;
const EMPTY: FilesSnapshot = Object.freeze({ objects: Object.freeze([]), diagnostics: Object.freeze([]), generation: 0 });

/**
 * Watches a manifest directory and publishes immutable snapshots of its objects and diagnostics.
 * Files are sorted by relative path (dot-entries skipped, symlinks followed); changes are seen
 * through fs.watch on every directory plus polling of mtimes and sizes, and published after
 * `debounceMs`, well within a second. One reload runs at a time; a snapshot is published only
 * when its content differs from the last. Invalid documents are logged (warn) on every reload.
 */
export class FilesRegistry {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly pollIntervalMs: number;
  private readonly debounceMs: number;
  private readonly listeners = new Set<(snapshot: FilesSnapshot) => void>();
  private readonly watchers = new Map<string, FSWatcher>();
  private snapshot = EMPTY;
  private canonical = '';
  private fingerprint = '';
  /** What each file contributed to the last snapshot, for keeping the last good version. */
  private lastByFile = new Map<string, readonly KubeObject[]>();
  private started = false;
  private closed = false;
  private watchFailed = false;
  private startPromise?: Promise<void>;
  private closePromise?: Promise<void>;
  private pollTimer?: NodeJS.Timeout;
  private debounceTimer?: NodeJS.Timeout;
  private reloading?: Promise<void>;
  private dirty = false;
  private polling = false;

  constructor(dir: string, log: Logger, opts: FilesRegistryOptions = {}) {
    this.dir = path.resolve(dir);
    this.log = log.child({ module: 'registry-files', dir: this.dir });
    this.pollIntervalMs = opts.pollIntervalMs ?? 300;
    this.debounceMs = opts.debounceMs ?? 50;
  }

  /**
   * Loads the directory once, then watches it (fs.watch per directory, plus polling). Resolves
   * when the first snapshot is published; rejects if DIR is not a readable directory. Idempotent;
   * rejects after `close()`.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('FilesRegistry is closed'));
    return (this.startPromise ??= this.doStart());
  }

  /**
   * Calls `listener` with the current snapshot right away (synchronously) if started, and after
   * every reload whose objects or diagnostics differ from the last snapshot. Returns the
   * unsubscribe function. A listener that throws is logged and does not affect the others.
   */
  onChange(listener: (snapshot: FilesSnapshot) => void): () => void {
    this.listeners.add(listener);
    if (this.started) this.notify(listener, this.snapshot);
    return () => void this.listeners.delete(listener);
  }

  /** The latest snapshot (generation 0 and empty before the first load). */
  current(): FilesSnapshot {
    return this.snapshot;
  }

  /** Stops watchers and timers and waits for an in-flight reload; nothing is published afterwards. Idempotent. */
  close(): Promise<void> {
    return (this.closePromise ??= this.doClose());
  }

  private async doStart(): Promise<void> {
    const st = await fsp.stat(this.dir).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`manifest directory ${this.dir}: ${err.code ?? err.message}`, { cause: err });
    });
    if (!st.isDirectory()) throw new Error(`manifest directory ${this.dir}: not a directory`);
    await this.runReload();
    if (this.closed) return;
    this.started = true;
    this.pollTimer = setInterval(() => void this.poll(), this.pollIntervalMs);
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.pollTimer = this.debounceTimer = undefined;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.listeners.clear();
    await this.reloading;
  }

  /** Coalesces changes: the first one arms a timer, later ones ride along with it. */
  private schedule(): void {
    if (this.closed || !this.started || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.runReload();
    }, this.debounceMs);
  }

  /** One reload at a time; a change during a reload runs another one right after it. */
  private runReload(): Promise<void> {
    if (this.reloading) {
      this.dirty = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.dirty = false;
        try {
          await this.reload();
        } catch (err) {
          this.log.error('reload failed', { err });
        }
      } while (this.dirty && !this.closed);
      this.reloading = undefined;
    })();
    return this.reloading;
  }

  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const scan = await this.scan();
      if (scan.fingerprint !== this.fingerprint) this.schedule();
    } finally {
      this.polling = false;
    }
  }

  private async reload(): Promise<void> {
    const scan = await this.scan();
    if (this.closed) return;
    this.fingerprint = scan.fingerprint;
    this.syncWatchers(scan.dirs);
    const files: LoadedFile[] = [];
    for (const file of scan.files) {
      try {
        files.push({ rel: file.rel, docs: loadManifestFile(file.rel, await fsp.readFile(file.abs, 'utf8'), this.log) });
      } catch (err) {
        const reason = `cannot read file: ${errorCode(err)}`;
        files.push({ rel: file.rel, docs: [{ kind: 'diagnostic', diagnostic: { file: file.rel, severity: 'error', reason } }] });
      }
    }
    if (this.closed) return;
    const { objects, diagnostics, byFile } = assembleObjects(files, scan.problems, this.lastByFile);
    this.lastByFile = byFile;
    for (const d of diagnostics) {
      const fields = { file: d.file, line: d.line, reason: d.reason };
      if (d.severity === 'error') this.log.warn('invalid document skipped', fields);
      else this.log.warn('document accepted with warnings', fields);
    }
    this.publish(objects, diagnostics);
  }

  private publish(objects: KubeObject[], diagnostics: Diagnostic[]): void {
    const canonical = canonicalJson({ objects, diagnostics });
    if (canonical === this.canonical) return;
    this.canonical = canonical;
    const generation = this.snapshot.generation + 1;
    this.snapshot = Object.freeze({ objects: Object.freeze(objects), diagnostics: Object.freeze(diagnostics), generation });
    const errors = diagnostics.filter((d) => d.severity === 'error').length;
    this.log.info('manifests loaded', { generation, objects: objects.length, errors, warnings: diagnostics.length - errors });
    for (const listener of [...this.listeners]) this.notify(listener, this.snapshot);
  }

  private notify(listener: (snapshot: FilesSnapshot) => void, snapshot: FilesSnapshot): void {
    try {
      listener(snapshot);
    } catch (err) {
      this.log.error('snapshot listener threw', { err });
    }
  }

  /** Lists manifest files (sorted by relative path) and directories, skipping dot-entries such as ConfigMap volumes' `..data`. */
  private async scan(): Promise<Scan> {
    const files: (ScannedFile & { stamp: string })[] = [];
    const dirs: string[] = [];
    const problems: Diagnostic[] = [];
    const visited = new Set<string>();
    const walk = async (abs: string, rel: string): Promise<void> => {
      let st: Stats;
      try {
        st = await fsp.stat(abs);
      } catch (err) {
        problems.push({ file: rel || '.', severity: 'error', reason: `cannot read directory: ${errorCode(err)}` });
        return;
      }
      // Symlinked directories are followed once; the dev/inode pair breaks cycles.
      const id = `${st.dev}:${st.ino}`;
      if (visited.has(id)) return;
      visited.add(id);
      dirs.push(abs);
      let entries: string[];
      try {
        entries = await fsp.readdir(abs);
      } catch (err) {
        problems.push({ file: rel || '.', severity: 'error', reason: `cannot read directory: ${errorCode(err)}` });
        return;
      }
      for (const name of entries.sort()) {
        if (name.startsWith('.')) continue;
        const childAbs = path.join(abs, name);
        const childRel = rel === '' ? name : `${rel}/${name}`;
        const cst = await fsp.stat(childAbs).catch(() => undefined); // a dangling link, or just deleted
        if (cst?.isDirectory()) await walk(childAbs, childRel);
        else if (cst?.isFile() && MANIFEST.test(name)) {
          files.push({ rel: childRel, abs: childAbs, stamp: `${cst.mtimeMs}:${cst.size}` });
        }
      }
    };
    await walk(this.dir, '');
    files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const fingerprint = JSON.stringify([files.map((f) => [f.rel, f.stamp]), dirs, problems]);
    return { files, dirs, problems, fingerprint };
  }

  /** One non-recursive fs.watch per directory (recursive watching is not portable on Node 20). */
  private syncWatchers(dirs: readonly string[]): void {
    const wanted = new Set(dirs);
    for (const [dir, w] of this.watchers) {
      if (!wanted.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir) || this.watchFailed) continue;
      try {
        const w = watch(dir, { persistent: true }, (_event, filename) => this.onWatchEvent(filename));
        w.on('error', () => {
          // The directory went away (or the watch broke): polling and the next reload recover.
          w.close();
          if (this.watchers.get(dir) === w) this.watchers.delete(dir);
          this.schedule();
        });
        this.watchers.set(dir, w);
      } catch (err) {
        this.watchFailed = true;
        this.log.warn('fs.watch unavailable, relying on polling', { err, pollIntervalMs: this.pollIntervalMs });
      }
    }
  }

  private onWatchEvent(filename: string | Buffer | null): void {
    const name = filename?.toString();
    // Manifest files reload at once (mtime may not move on a fast rewrite); other names, such as
    // editor swap files, only if the cheap fingerprint check sees a difference.
    if (name === undefined || MANIFEST.test(name)) this.schedule();
    else void this.poll();
  }
}

function errorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? (e instanceof Error ? e.message : String(err));
}

/** JSON with object keys sorted, so equal content compares equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
