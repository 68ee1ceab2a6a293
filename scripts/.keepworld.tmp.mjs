import { buildWorld } from '/work/main/scripts/bench-world.mjs';
const w = await buildWorld({ pins: 10000, instances: 50, procs: 1000 });
console.log('READY', w.dir);
process.stdin.resume();
process.stdin.on('end', async () => { await w.teardown(); process.exit(0); });
process.on('SIGTERM', async () => { await w.teardown(); process.exit(0); });
