// The shipped command is one bundled file: Node's ES module loader costs about 3 ms per
// module, and pinleak with yargs is ~90 modules, so a bundle starts ~150 ms sooner (cron
// runs it every few minutes; `scan` should not be slower than bpftool for want of that).
// koffi and better-sqlite3 stay external: they load native code from their packages.
import { build } from 'esbuild';
import fs from 'node:fs';

// The Node.js versions pinleak is tested on (.ci/run runs the suite under each). The
// oldest is package.json's engines.node minimum: the build refuses to let them disagree.
const SUPPORTED_NODE = [20, 22, 24];
const engines = JSON.parse(fs.readFileSync('package.json', 'utf8')).engines?.node;
if (engines !== `>=${SUPPORTED_NODE[0]}`) {
  throw new Error(`package.json engines.node is ${JSON.stringify(engines)}, scripts/bundle.mjs supports >=${SUPPORTED_NODE[0]}`);
}
const supportedList = `${SUPPORTED_NODE.slice(0, -1).join(', ')} or ${SUPPORTED_NODE.at(-1)}`;
// First in the bundle, in syntax any Node parses: an older Node otherwise dies with a
// stack trace inside yargs or on better-sqlite3's NODE_MODULE_VERSION. (An ES module's
// imports load before its first line runs, but the bundle imports only Node builtins.)
const nodeVersionCheck = `if (+process.versions.node.split('.')[0] < ${SUPPORTED_NODE[0]}) {`
  + ` process.stderr.write('pinleak: Node.js ' + process.versions.node.split('.')[0] + '.x is not supported; use Node.js ${supportedList}\\n');`
  + ' process.exit(2); }';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/pinleak.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi', 'better-sqlite3'],
  // CommonJS dependencies inside an ES module bundle still call require()
  // (the entry keeps its own #! line first)
  banner: { js: `${nodeVersionCheck}\nimport { createRequire as __pinleakRequire } from 'node:module'; const require = __pinleakRequire(import.meta.url);` },
  logLevel: 'warning',
});
fs.chmodSync('dist/pinleak.mjs', 0o755);
