/**
 * The CLI's errors (STYLE.md, "Errors"): one base class with a stable `code` and the process exit
 * status it maps to. `main.ts` is the one boundary that turns any of them into a single line on
 * stderr and an exit status; nothing below it prints errors or calls `process.exit`.
 */

/** Base class: `message` is one line meant for a person, `exitCode` the status to exit with. */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: number;
  /** Extra lines printed after the message (for example the tail of a child's log). */
  readonly details: readonly string[];

  constructor(message: string, opts: { code?: string; exitCode?: number; details?: readonly string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? 'WEFT_CLI_ERROR';
    this.exitCode = opts.exitCode ?? 1;
    this.details = opts.details ?? [];
  }
}

/**
 * Bad command line or bad input: a flag, a value, a missing variable. Exit status 2. `more` are
 * further problems of the same kind, each printed as its own `weft <cmd>: ` line.
 */
export class UsageError extends CliError {
  readonly more: readonly string[];

  constructor(message: string, opts: { code?: string; more?: readonly string[] } = {}) {
    super(message, { code: opts.code ?? 'WEFT_USAGE', exitCode: 2 });
    this.more = opts.more ?? [];
  }
}

/** A command or mode that a later issue brings. Exit status 2, like any unusable input. */
export class NotAvailableError extends CliError {
  constructor(message: string) {
    super(message, { code: 'WEFT_NOT_AVAILABLE', exitCode: 2 });
  }
}

/**
 * Turns anything thrown into what to print and the exit status: `problems` each become one
 * `weft <cmd>: ` line, `details` follow unprefixed. Unknown errors keep only their first message
 * line; a stack is for `WEFT_DEBUG=1` (see main.ts).
 */
export function describeError(err: unknown): { problems: string[]; details: readonly string[]; exitCode: number } {
  if (err instanceof UsageError) return { problems: [err.message, ...err.more], details: [], exitCode: err.exitCode };
  if (err instanceof CliError) return { problems: [err.message], details: err.details, exitCode: err.exitCode };
  const message = err instanceof Error ? err.message : String(err);
  // Some errors carry newlines (e.g. from child tools); the contract is one line.
  return { problems: [message.split('\n')[0] || 'unknown error'], details: [], exitCode: 1 };
}
