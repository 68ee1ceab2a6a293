// Fallback peak-RSS probe, used by bench.mjs only when /usr/bin/time is absent:
// runs the pinleak CLI in this very process and, at exit, writes this process's
// getrusage(RUSAGE_SELF) ru_maxrss (KiB), user and system CPU seconds (the format of
// `/usr/bin/time -f '%M %U %S'`) to the file named by the first argument.
//   node scripts/bench-rss.mjs RSS_FILE scan --db FILE --json --timings
// The figure is the same kernel high-water mark /usr/bin/time -f %M reads through
// wait4(), but it also counts this wrapper's own (small) import before the CLI loads.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/pinleak.mjs', import.meta.url));
const [rssFile, ...args] = process.argv.slice(2);
process.argv = [process.argv[0], cli, ...args];
process.on('exit', () => {
  const u = process.resourceUsage();
  fs.writeFileSync(rssFile, `${u.maxRSS} ${u.userCPUTime / 1e6} ${u.systemCPUTime / 1e6}\n`);
});
await import(cli);
