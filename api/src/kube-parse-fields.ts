/**
 * Field-level checks shared by the Kubernetes object parsers (`kube-parse.ts`,
 * `kube-parse-policy.ts`). A `FieldChecker` collects errors of the form
 * `spec.routes[1].backends[0].weight: must be an integer between 0 and 100` and returns the value
 * it could read (or `undefined`), so one pass reports every problem in a document.
 */

/** `null` counts as absent, as it does for the Kubernetes API server. */
export function absent(v: unknown): v is null | undefined {
  return v === undefined || v === null;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The path of `key` under `path`: `spec.routes`, `spec.routes[0]`, `metadata.labels["app.kubernetes.io/name"]`. */
export function fieldPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (!IDENT.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as `3s`, `250ms`, `1m`, `1.5s` or `1m30s` (units ms, s, m, h, as in Go
 * and Istio) into milliseconds, rounded to the microsecond. `"0"` is 0. Returns `undefined` for
 * anything else, including negative durations and numbers without a unit.
 */
export function parseDuration(s: string): number | undefined {
  if (typeof s !== 'string' || s === '') return undefined;
  if (s === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)/y;
  let total = 0;
  while (part.lastIndex < s.length) {
    const m = part.exec(s);
    if (m === null) return undefined;
    total += parseFloat(m[1]) * DURATION_UNITS[m[2]];
  }
  return Math.round(total * 1000) / 1000;
}

type Re2Ctor = new (pattern: string, flags?: string) => unknown;
let re2Ctor: Re2Ctor | undefined;
// Each compiled RE2 lives in WASM memory that is never freed, so remember verdicts instead of
// recompiling the same patterns on every reload.
const re2Verdicts = new Map<string, string | null>();

/** Why `pattern` does not compile as RE2 (via `re2-wasm`, loaded on first use), or `undefined`. */
export function re2Error(pattern: string): string | undefined {
  const known = re2Verdicts.get(pattern);
  if (known !== undefined) return known ?? undefined;
  re2Ctor ??= (require('re2-wasm') as { RE2: Re2Ctor }).RE2;
  let verdict: string | null = null;
  try {
    new re2Ctor(pattern, 'u');
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // "Invalid regular expression: /a(b/u: missing ): a(b" → "missing ): a(b"
    verdict = msg.replace(/^Invalid regular expression: \/.*\/u: /s, '');
  }
  if (re2Verdicts.size >= 1024) re2Verdicts.clear();
  re2Verdicts.set(pattern, verdict);
  return verdict ?? undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes' name rules, each returning why a name breaks it or `undefined`. */
export const names = {
  dnsLabel(s: string): string | undefined {
    return s.length <= 63 && DNS_LABEL.test(s) ? undefined : 'must be a DNS label (lowercase letters, digits, "-"; at most 63)';
  },
  dns1035Label(s: string): string | undefined {
    return s.length <= 63 && DNS1035_LABEL.test(s)
      ? undefined
      : 'must be a DNS-1035 label (a lowercase letter, then lowercase letters, digits, "-"; at most 63)';
  },
  dnsSubdomain(s: string): string | undefined {
    return s.length <= 253 && s.split('.').every((l) => l.length <= 63 && DNS_LABEL.test(l))
      ? undefined
      : 'must be a DNS subdomain (lowercase letters, digits, "-", "."; at most 253)';
  },
  /** A container port name (IANA_SVC_NAME): at most 15, at least one letter, no "--". */
  portName(s: string): string | undefined {
    return s.length <= 15 && PORT_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--')
      ? undefined
      : 'must be a port name (lowercase letters, digits, "-"; at most 15; at least one letter)';
  },
  labelKey(s: string): string | undefined {
    const slash = s.lastIndexOf('/');
    const prefix = slash >= 0 ? s.slice(0, slash) : undefined;
    const name = s.slice(slash + 1);
    if (prefix !== undefined && names.dnsSubdomain(prefix) !== undefined) return 'label key prefix must be a DNS subdomain';
    return name.length <= 63 && LABEL_NAME.test(name) ? undefined : 'must be a valid label key';
  },
  labelValue(s: string): string | undefined {
    return s === '' || (s.length <= 63 && LABEL_NAME.test(s)) ? undefined : 'must be a valid label value (at most 63)';
  },
};

export interface StringOpts {
  readonly required?: boolean;
  /** A name rule from `names`, or any check returning a reason. */
  readonly check?: (s: string) => string | undefined;
}

/** Collects `path: reason` errors while reading one document. */
export class FieldChecker {
  readonly errors: string[] = [];

  error(path: string, reason: string): void {
    this.errors.push(path === '' ? reason : `${path}: ${reason}`);
  }

  /** A mapping; with `fields`, every other key is an error (a structural schema). */
  object(v: unknown, path: string, opts: { required?: boolean; fields?: readonly string[] } = {}): Record<string, unknown> | undefined {
    if (absent(v)) {
      if (opts.required) this.error(path, 'required');
      return undefined;
    }
    if (!isPlainObject(v)) return this.error(path, 'must be an object'), undefined;
    if (opts.fields) {
      for (const k of Object.keys(v)) if (!opts.fields.includes(k)) this.error(fieldPath(path, k), 'unknown field');
    }
    return v;
  }

  array(v: unknown, path: string, required = false): readonly unknown[] | undefined {
    if (absent(v)) {
      if (required) this.error(path, 'required');
      return undefined;
    }
    if (!Array.isArray(v)) return this.error(path, 'must be a list'), undefined;
    return v;
  }

  string(v: unknown, path: string, opts: StringOpts = {}): string | undefined {
    if (absent(v) || v === '') {
      if (opts.required) this.error(path, 'required');
      return undefined;
    }
    if (typeof v !== 'string') return this.error(path, 'must be a string'), undefined;
    const why = opts.check?.(v);
    if (why !== undefined) return this.error(path, why), undefined;
    return v;
  }

  int(v: unknown, path: string, min: number, max: number, required = false): number | undefined {
    if (absent(v)) {
      if (required) this.error(path, 'required');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
      return this.error(path, `must be an integer ${range}`), undefined;
    }
    return v;
  }

  number(v: unknown, path: string, min: number, max: number, required = false): number | undefined {
    if (absent(v)) {
      if (required) this.error(path, 'required');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      return this.error(path, `must be a number between ${min} and ${max}`), undefined;
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], required = false): T | undefined {
    if (absent(v)) {
      if (required) this.error(path, 'required');
      return undefined;
    }
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      return this.error(path, `must be one of ${allowed.join(', ')}`), undefined;
    }
    return v as T;
  }

  /** A positive duration string (see `parseDuration`), in milliseconds. */
  duration(v: unknown, path: string, required = false): number | undefined {
    if (absent(v)) {
      if (required) this.error(path, 'required');
      return undefined;
    }
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined) return this.error(path, 'must be a duration such as "250ms", "1.5s" or "1m"'), undefined;
    if (ms <= 0) return this.error(path, 'must be a positive duration'), undefined;
    return ms;
  }

  /** A string that compiles as an RE2 regular expression. */
  regex(v: unknown, path: string): string | undefined {
    const s = this.string(v, path, { required: true });
    if (s === undefined) return undefined;
    const why = re2Error(s);
    if (why !== undefined) return this.error(path, `invalid RE2 regular expression: ${why}`), undefined;
    return s;
  }

  /** A map of strings; with `labels`, keys and values must follow Kubernetes' label syntax. */
  stringMap(v: unknown, path: string, labels = false): Record<string, string> {
    const out: Record<string, string> = {};
    const m = this.object(v, path);
    if (m === undefined) return out;
    for (const [k, val] of Object.entries(m)) {
      const p = fieldPath(path, k);
      if (typeof val !== 'string') {
        this.error(p, 'must be a string (quote numbers and booleans)');
        continue;
      }
      const why = labels ? (names.labelKey(k) ?? names.labelValue(val)) : undefined;
      if (why !== undefined) this.error(p, why);
      else out[k] = val;
    }
    return out;
  }
}
