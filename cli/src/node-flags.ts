/** The node flags list itself lives in api/ (api/src/node-flags.ts), shared with the injector. */
import { SIDECAR_NODE_FLAGS } from '@weft/api';

export { SIDECAR_NODE_FLAGS };

/** The flags to start `weft <command>` with (none for commands other than the sidecar). */
export function nodeFlagsFor(command: string | undefined): readonly string[] {
  return command === 'sidecar' ? SIDECAR_NODE_FLAGS : [];
}

/** The recommended flags this process was started without (in argv or NODE_OPTIONS). */
export function missingNodeFlags(recommended: readonly string[], execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map((f) => f.split('=')[0]!.replace(/_/g, '-')));
  return recommended.filter((f) => !given.has(f.split('=')[0]!));
}
