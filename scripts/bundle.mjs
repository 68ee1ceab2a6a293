// The shipped command is one bundled file: Node's ES module loader costs about 3 ms per
// module, and pinleak with yargs is ~90 modules, so a bundle starts ~150 ms sooner (cron
// runs it every few minutes; `scan` should not be slower than bpftool for want of that).
// koffi and better-sqlite3 stay external: they load native code from their packages.
import { build } from 'esbuild';
import fs from 'node:fs';

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
  banner: { js: "import { createRequire as __pinleakRequire } from 'node:module'; const require = __pinleakRequire(import.meta.url);" },
  logLevel: 'warning',
});
fs.chmodSync('dist/pinleak.mjs', 0o755);
