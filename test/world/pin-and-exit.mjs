// A short-lived "instrumented app" for `pinleak run` tests: creates a map, pins it at
// argv[2], prints a line on stdout, keeps the map's fd for argv[4] ms (default 0), and
// exits with argv[3] (default 0) without unpinning.
import fs from 'node:fs';
import path from 'node:path';

const bpf = await import(new URL('../../dist/kernel/bpf.js', import.meta.url).href);
const [pinPath, code = '0', holdMs = '0'] = process.argv.slice(2);
fs.mkdirSync(path.dirname(pinPath), { recursive: true });
const fd = bpf.mapCreate({ type: 1, keySize: 4, valueSize: 8, maxEntries: 64, name: 'run_leak' });
bpf.objPin(fd, pinPath);
console.log(`pinned ${pinPath}`);
setTimeout(() => process.exit(Number(code)), Number(holdMs));
