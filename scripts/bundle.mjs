// The shipped command is one bundled file: Node's ES module loader costs about 3 ms per
// module, and pinleak with yargs is ~90 modules, so a bundle starts ~150 ms sooner (cron
// runs it every few minutes; `scan` should not be slower than bpftool for want of that).
// koffi and better-sqlite3 stay external: they load native code from their packages.
//
// dist/pinleak.mjs is a small entry that turns on V8's compile cache (Node 22.1+:
// module.enableCompileCache; absent on Node 20, where it does nothing) before it loads the
// bundle, dist/pinleak-cli.mjs: a cached bundle skips compiling its ~560 KB on every cron run.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';

// yargs and cliui measure text with string-width, whose module body builds an
// Intl.Segmenter and compiles Unicode property regexes (\p{RGI_Emoji} with the v flag): 20
// to 70 ms of CPU on every start, though only --help output ever measures text. Each copy is
// bundled behind a stand-in that loads it on the first call (a require() in a bundle
// initializes the ES module there, not at start).
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData?.real) return undefined; // the stand-in's own import: the package itself
      const real = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: { real: true } });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      resolveDir: path.dirname(args.path),
      pluginData: { real: true },
      contents: `let width;
export default function stringWidth(string, options) {
  width ??= require(${JSON.stringify(args.path)}).default;
  return width(string, options);
}
`,
    }));
  },
};

// The Node.js versions pinleak is tested on (.ci/run runs the suite under each). The
// oldest is package.json's engines.node minimum: the build refuses to let them disagree.
const SUPPORTED_NODE = [20, 22, 24];
const engines = JSON.parse(fs.readFileSync('package.json', 'utf8')).engines?.node;
if (engines !== `>=${SUPPORTED_NODE[0]}`) {
  throw new Error(`package.json engines.node is ${JSON.stringify(engines)}, scripts/bundle.mjs supports >=${SUPPORTED_NODE[0]}`);
}
const supportedList = `${SUPPORTED_NODE.slice(0, -1).join(', ')} or ${SUPPORTED_NODE.at(-1)}`;
// First in the command's entry, in syntax any Node parses: an older Node otherwise dies
// with a stack trace inside yargs or on better-sqlite3's NODE_MODULE_VERSION. (An ES
// module's imports load before its first line runs, but the entry imports only node:module.)
const nodeVersionCheck = `if (+process.versions.node.split('.')[0] < ${SUPPORTED_NODE[0]}) {`
  + ` process.stderr.write('pinleak: Node.js ' + process.versions.node.split('.')[0] + '.x is not supported; use Node.js ${supportedList}\\n');`
  + ' process.exit(2); }';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/pinleak-cli.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi', 'better-sqlite3'],
  plugins: [lazyStringWidth],
  // CommonJS dependencies inside an ES module bundle still call require()
  // (the entry keeps its own #! line first)
  banner: { js: `import { createRequire as __pinleakRequire } from 'node:module'; const require = __pinleakRequire(import.meta.url);` },
  logLevel: 'warning',
});
fs.writeFileSync('dist/pinleak.mjs', `#!/usr/bin/env node
// pinleak's command (see scripts/bundle.mjs): the compile cache first, then the bundle.
${nodeVersionCheck}
import module from 'node:module';
import v8 from 'node:v8';
// A one-shot command keeps V8's young generation at its first size (it otherwise grows to
// 16 MB a semi-space): a 10,000-pin scan peaks at ~120 MB of RSS instead of ~160, for
// ~25 ms more of scavenges. watch, whose periodic scan is timed against bpftool, keeps
// the default (there it costs ~50 ms a scan).
if (process.argv.indexOf('watch') < 0) v8.setFlagsFromString('--semi-space-growth-factor=1');
// (no ?. and no top-level await: the version check above must parse on any Node)
try {
  if (typeof module.enableCompileCache === 'function') module.enableCompileCache();
} catch (e) {
  // no cache directory (read-only /tmp): compile as usual
}
import('./pinleak-cli.mjs');
`);
fs.chmodSync('dist/pinleak.mjs', 0o755);
