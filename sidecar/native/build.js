// Builds the SO_ORIGINAL_DST addon at install (npm runs this for the workspace). Capture mode
// needs it; local mode does not, so a failed build is reported and does not fail the install.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const fs = require('node:fs');

// npm tells its scripts where its node-gyp is; run by hand, use the one bundled with npm.
const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp || (fs.existsSync(bundled) ? bundled : 'node-gyp');
const args = ['rebuild'];
// Offline, node-gyp must find Node's headers rather than download them: npm's `nodedir`, or the
// headers installed beside this node binary (Debian and the official tarballs ship them there).
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (fs.existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? prefix : undefined);
if (nodedir) args.push(`--nodedir=${nodedir}`);
const cmd = gyp.endsWith('.js') ? process.execPath : gyp;
const argv = gyp.endsWith('.js') ? [gyp, ...args] : args;
const r = spawnSync(cmd, argv, { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  const why = (r.error && r.error.message) || (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
  console.warn(`weft sidecar: the SO_ORIGINAL_DST addon did not build (${why}); transparent capture will be unavailable, local mode works`);
}
