#!/usr/bin/env node
/**
 * The `weft` command: finds the subcommand, parses its flags, handles `--help` and `--version`,
 * runs it, and is the one place that turns errors into output (SPEC.md: one clear line on
 * stderr, a non-zero exit, never a stack trace — unless WEFT_DEBUG=1 asks for it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from './args';
import { formatCommandHelp, formatMainHelp, type Command } from './command';
import { captureInitCommand } from './cmd-capture-init';
import { checkCommand } from './cmd-check';
import { controlPlaneCommand } from './cmd-control-plane';
import { demoCommand } from './cmd-demo';
import { injectCommand } from './cmd-inject';
import { proxyConfigCommand } from './cmd-proxy-config';
import { proxyStatusCommand } from './cmd-proxy-status';
import { sidecarCommand } from './cmd-sidecar';
import { statCommand } from './cmd-stat';
import { traceCommand } from './cmd-trace';
import { describeError, UsageError } from './errors';

/** Every subcommand, in the order `weft --help` lists them. */
const COMMANDS: readonly Command[] = [
  demoCommand,
  controlPlaneCommand,
  sidecarCommand,
  captureInitCommand,
  injectCommand,
  proxyStatusCommand,
  proxyConfigCommand,
  checkCommand,
  traceCommand,
  statCommand,
];

function version(): string {
  try {
    // dist/src/main.js → the repository's package.json
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs one `weft` invocation; resolves to the exit status. Throws only CliErrors and bugs. */
async function main(argv: readonly string[], setCommand: (name: string) => void): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = rest[0];
    const cmd = topic === undefined ? undefined : COMMANDS.find((c) => c.name === topic);
    if (topic !== undefined && !cmd) throw new UsageError(`unknown command "${topic}" (see weft --help)`);
    process.stdout.write(cmd ? formatCommandHelp(cmd) : formatMainHelp(COMMANDS));
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`weft ${version()}\n`);
    return 0;
  }
  if (name === undefined) throw new UsageError('missing command (see weft --help)');
  if (name.startsWith('-')) throw new UsageError(`unknown flag ${name} (see weft --help)`);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) throw new UsageError(`unknown command "${name}" (see weft --help)`);
  setCommand(cmd.name);

  const args = parseArgs(rest, cmd.flags, cmd.maxPositionals ?? 0);
  if (args.help) {
    process.stdout.write(formatCommandHelp(cmd));
    return 0;
  }
  return cmd.run(args);
}

let prefix = 'weft';

/** Prints an error as SPEC.md wants it and exits; the single exit point for failures. */
function fail(err: unknown): never {
  const { problems, details, exitCode } = describeError(err);
  // Top-level usage messages already say "(see weft --help)"; a command's point to its own help.
  const suffix = err instanceof UsageError && problems.length === 1 && prefix !== 'weft' ? ` (see ${prefix} --help)` : '';
  const out = problems.map((p, i) => `${prefix}: ${p}${i === 0 ? suffix : ''}`);
  process.stderr.write([...out, ...details].join('\n') + '\n');
  if (process.env.WEFT_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(exitCode);
}

// A bug that escapes a command's promises still ends as one line, not a stack trace.
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

main(process.argv.slice(2), (name) => (prefix = `weft ${name}`)).then((code) => process.exit(code), fail);
