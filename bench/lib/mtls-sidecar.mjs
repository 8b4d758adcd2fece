// A Weft sidecar with a static workload identity, for the mTLS benchmark: `weft sidecar` without a
// certificate manager (the CA's, issue 4, is wired by the CLI), so the certificate, key and trust
// bundle come from files: WEFT_BENCH_CERT, WEFT_BENCH_KEY, WEFT_BENCH_CA. Otherwise the sidecar
// environment of SPEC.md. Exits when its parent closes stdin (`--exit-with-parent`) or on SIGTERM.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);
const { startSidecar, sidecarOptionsFromEnv } = require(join(root, 'sidecar/dist/src/index.js'));
const { options, errors } = sidecarOptionsFromEnv(process.env);
if (!options) {
  console.error(errors.join('\n'));
  process.exit(2);
}
const cert = {
  keyPem: readFileSync(process.env.WEFT_BENCH_KEY, 'utf8'),
  chainPem: readFileSync(process.env.WEFT_BENCH_CERT, 'utf8'),
  spiffeId: `spiffe://cluster.local/ns/${options.namespace}/sa/${options.serviceAccount}`,
  notBefore: new Date(Date.now() - 60_000),
  notAfter: new Date(Date.now() + 86_400_000),
};
const identity = { current: () => cert, onChange: () => () => undefined };
const trustBundles = new Map([['ROOTCA', { name: 'ROOTCA', caPem: readFileSync(process.env.WEFT_BENCH_CA, 'utf8') }]]);
const sidecar = await startSidecar({ ...options, identityProvider: identity, trustBundles });
const quit = () => void sidecar.close().then(() => process.exit(0));
process.on('SIGTERM', quit);
if (process.argv.includes('--exit-with-parent')) {
  process.stdin.on('end', quit);
  process.stdin.resume();
}
await sidecar.closed;
process.exit(0);
