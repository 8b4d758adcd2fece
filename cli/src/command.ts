/**
 * What a `weft` subcommand is: a name, its help, its flags and an async `run`. `main.ts` owns the
 * table of commands, parses flags with `args.ts` and handles `--help`, so a command's `run` sees
 * only valid flags and never prints its own usage errors.
 */
import { formatFlags, type FlagSpec, type ParsedArgs } from './args';
import { NotAvailableError } from './errors';

export interface Command {
  readonly name: string;
  /** One line for the `weft --help` table. */
  readonly summary: string;
  /** The synopsis, e.g. `weft demo [--requests N]`. */
  readonly usage: string;
  /** Paragraphs shown by `weft <cmd> --help` between the synopsis and the flags. */
  readonly description: readonly string[];
  readonly flags: readonly FlagSpec[];
  /** How many positional arguments the command takes (default 0). */
  readonly maxPositionals?: number;
  /** Shown at the end of `weft --help`'s table and marked as coming later. */
  readonly available: boolean;
  /**
   * Runs the command with parsed flags; resolves to the exit status. Throws `CliError`s for
   * failures the user should read as one line; `main.ts` prints them.
   */
  run(args: ParsedArgs): Promise<number>;
}

/** The full `--help` text of one command. */
export function formatCommandHelp(cmd: Command): string {
  const lines = [`Usage: ${cmd.usage}`, ''];
  for (const p of cmd.description) lines.push(p, '');
  lines.push('Flags:', ...formatFlags(cmd.flags));
  return lines.join('\n') + '\n';
}

/** The `weft --help` text: every command with its summary. */
export function formatMainHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const row = (c: Command): string => `  ${c.name.padEnd(width)}  ${c.summary}`;
  return [
    'Usage: weft <command> [flags]',
    '',
    'Weft is a service mesh: a sidecar proxy per pod and a control plane that configures',
    'every sidecar over xDS. See README.md and docs/ for more.',
    '',
    'Commands:',
    ...commands.filter((c) => c.available).map(row),
    ...(commands.some((c) => !c.available)
      ? ['', 'Coming in later versions (they print "not available" for now):', ...commands.filter((c) => !c.available).map(row)]
      : []),
    '',
    'Run "weft <command> --help" for a command\'s flags; "weft --version" prints the version.',
    '',
  ].join('\n');
}

/**
 * A command that a later issue brings: full `--help`, and running it prints
 * `weft <cmd>: not available in this version yet` and exits 2.
 */
export function notYetCommand(spec: Omit<Command, 'run' | 'available'>): Command {
  return {
    ...spec,
    available: false,
    run: () => Promise.reject(new NotAvailableError('not available in this version yet')),
  };
}
