/**
 * A small command-line flag parser. Accepts `--flag value`, `--flag=value`, boolean `--flag`
 * (and `--flag=true|false`), an optional one-letter alias (`-f value`), `-h`/`--help` on every
 * command, and `--` to end flags. Anything it does not know is a `UsageError` naming the flag,
 * so every command reports bad input as one line and exit status 2.
 */
import { UsageError } from './errors';

export interface FlagSpec {
  /** Long name without dashes, e.g. `manifests`. */
  readonly name: string;
  readonly type: 'string' | 'boolean';
  /** Placeholder shown in help for a string flag, e.g. `DIR`. */
  readonly placeholder?: string;
  /** One-letter alias, used as `-f`. */
  readonly short?: string;
  readonly help: string;
  /** Accepted but left out of help (e.g. `--exit-with-parent`, used by the demo). */
  readonly hidden?: boolean;
}

export interface ParsedArgs {
  /** String flags map to their last value, booleans to true/false; absent flags are absent. */
  readonly flags: ReadonlyMap<string, string | boolean>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

const HELP: FlagSpec = { name: 'help', short: 'h', type: 'boolean', help: 'show this help' };

/**
 * Parses `argv` (the words after the command name) against `specs`. Pure and synchronous;
 * throws `UsageError` for an unknown flag, a missing or malformed value, or more positional
 * arguments than `maxPositionals`.
 */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], maxPositionals = 0): ParsedArgs {
  const all = [...specs, HELP];
  const byLong = new Map(all.map((s) => [s.name, s]));
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short as string, s]));
  const flags = new Map<string, string | boolean>();
  const positionals: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      positionals.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    const key = eq >= 0 ? word.slice(0, eq) : word;
    const inline = eq >= 0 ? word.slice(eq + 1) : undefined;
    const spec = key.startsWith('--') ? byLong.get(key.slice(2)) : byShort.get(key.slice(1));
    if (!spec) {
      throw new UsageError(`unknown flag ${key}`);
    }
    if (spec.type === 'boolean') {
      if (inline === undefined) flags.set(spec.name, true);
      else if (inline === 'true' || inline === 'false') flags.set(spec.name, inline === 'true');
      else throw new UsageError(`--${spec.name} takes no value or true|false, got "${inline}"`);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // A following flag is not a value: `--manifests --debug` is a missing value, not a dir.
      if (next === undefined || (next.startsWith('-') && next !== '-')) {
        throw new UsageError(`--${spec.name} needs a value${spec.placeholder ? ` (${spec.placeholder})` : ''}`);
      }
      value = next;
      i++;
    }
    if (value === '') throw new UsageError(`--${spec.name} needs a non-empty value`);
    flags.set(spec.name, value);
  }

  if (positionals.length > maxPositionals) {
    const extra = positionals[maxPositionals] as string;
    throw new UsageError(`unexpected argument "${extra}"`);
  }
  return { flags, positionals, help: flags.get('help') === true };
}

/** The value of a string flag, or undefined. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

/** True when a boolean flag was given (and not `=false`). */
export function booleanFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.get(name) === true;
}

/** Parses a whole number in [min, max]; `what` names the flag in the error. */
export function parseInteger(value: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${what} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${what} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Parses a TCP port (0 picks a free one). */
export function parsePort(value: string, what: string): number {
  return parseInteger(value, what, 0, 65535);
}

/** Validates `HOST:PORT` (an IPv4 address or a host name) and returns it unchanged. */
export function parseHostPort(value: string, what: string): string {
  const m = /^([^\s:]+):(\d+)$/.exec(value);
  if (!m) throw new UsageError(`${what} must be HOST:PORT, got "${value}"`);
  parsePort(m[2] as string, what);
  return value;
}

/** Renders the flag table for `--help`, aligned, hidden flags left out. */
export function formatFlags(specs: readonly FlagSpec[]): string[] {
  const rows = [...specs, HELP]
    .filter((s) => !s.hidden)
    .map((s) => {
      const long = `--${s.name}${s.type === 'string' ? ` ${s.placeholder ?? 'VALUE'}` : ''}`;
      return [s.short ? `-${s.short}, ${long}` : `    ${long}`, s.help] as const;
    });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, help]) => `  ${left.padEnd(width)}  ${help}`);
}
