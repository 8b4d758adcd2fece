/**
 * `weft inject -f FILE`: prints the manifests with the sidecar injected into every Pod and pod
 * template, exactly as the admission webhook would (the same function:
 * control-plane/src/inject-manifests.ts → inject-pod.ts). Other documents are copied unchanged.
 */
import { readFile } from 'node:fs/promises';
import { DEFAULT_INJECTION_CONFIG, injectManifests, InjectionConfigError, loadInjectionConfig, ManifestInjectError, type InjectionConfig } from '@weft/control-plane';
import { stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { CliError, UsageError } from './errors';

async function readInput(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new UsageError(`-f ${file}: ${why}`);
  }
}

async function run(args: ParsedArgs): Promise<number> {
  const file = stringFlag(args, 'filename');
  if (file === undefined) throw new UsageError('-f FILE is required ("-" reads stdin)');
  const configFile = stringFlag(args, 'injection-config');
  let config: InjectionConfig = DEFAULT_INJECTION_CONFIG;
  if (configFile !== undefined) {
    try {
      config = await loadInjectionConfig(configFile);
    } catch (e) {
      if (e instanceof InjectionConfigError) throw new UsageError(e.message, { more: e.problems.slice(1) });
      throw e;
    }
  }
  const text = await readInput(file);
  const source = file === '-' ? 'stdin' : file;
  let result: ReturnType<typeof injectManifests>;
  try {
    result = injectManifests(text, config);
  } catch (e) {
    if (e instanceof ManifestInjectError) throw new CliError(`${source}: ${e.message}`, { code: e.code });
    throw e;
  }
  process.stdout.write(result.output);
  for (const d of result.documents) {
    if (d.outcome === 'skipped') process.stderr.write(`weft inject: ${source}: document ${d.index} (${d.object}) left as it is: ${d.reason}\n`);
    for (const w of d.warnings ?? []) process.stderr.write(`weft inject: ${source}: document ${d.index} (${d.object}): ${w}\n`);
  }
  return 0;
}

export const injectCommand: Command = {
  name: 'inject',
  summary: 'print manifests with the sidecar injected, as the webhook would',
  usage: 'weft inject -f FILE|- [--injection-config FILE]',
  description: [
    'Prints the Kubernetes manifests in FILE ("-" for stdin) with the Weft sidecar injected into\n' +
      'every Pod and pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,\n' +
      'ReplicationController), exactly as the admission webhook would. Other documents, and pods\n' +
      'that are opted out (weft.dev/inject: "false") or already injected, are copied unchanged;\n' +
      'a line on stderr says why a pod was left alone.',
    'Invalid YAML or a pod the injector refuses (a bad injector annotation) prints one line\n' +
      'saying where and exits 1; an invalid --injection-config exits 2. Nothing is printed on\n' +
      'stdout then.',
  ],
  flags: [
    { name: 'filename', short: 'f', type: 'string', placeholder: 'FILE', help: 'the manifests to inject ("-" reads stdin)' },
    { name: 'injection-config', type: 'string', placeholder: 'FILE', help: 'InjectionConfig YAML/JSON (default: the built-in defaults, docs/configuration.md)' },
  ],
  available: true,
  run,
};
