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

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/pinleak-cli.mjs',
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
fs.writeFileSync('dist/pinleak.mjs', `#!/usr/bin/env node
// pinleak's command (see scripts/bundle.mjs): the compile cache first, then the bundle.
import module from 'node:module';
try {
  module.enableCompileCache?.();
} catch {
  // no cache directory (read-only /tmp): compile as usual
}
await import('./pinleak-cli.mjs');
`);
fs.chmodSync('dist/pinleak.mjs', 0o755);
