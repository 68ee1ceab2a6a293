// The processes of `pinleak demo`'s throw-away world. Each one waits on its stdin and
// ends when the pipe closes, so nothing outlives the demo, even when it is killed.
//   container MOUNTPOINT  mount a bpffs in this (private) mount namespace and stay
//   holder PATH           pin a map at PATH and keep holding it
//   creator DIR           pin OpenTelemetry-style maps under DIR/<own pid>/, exit on "exit"
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { mapCreate, objPin } from '../kernel/bpf.js';
import { MapType } from '../kernel/abi.js';

const [role, where] = process.argv.slice(2);

function pinMap(name: string, at: string, maxEntries: number): number {
  fs.mkdirSync(path.dirname(at), { recursive: true });
  const fd = mapCreate({ type: MapType.HASH, keySize: 8, valueSize: 64, maxEntries, name });
  objPin(fd, at);
  return fd;
}

function main(): void {
  if (!where) throw new Error('usage: actor container|holder|creator PATH');
  if (role === 'container') {
    fs.mkdirSync(where, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', where]);
  } else if (role === 'holder') {
    process.title = 'demo-service';
    pinMap('demo_sessions', where, 1024); // the fd stays open: held
  } else if (role === 'creator') {
    process.title = 'otel-go-instru'; // comm, as the real instrumentation shows up
    const dir = path.join(where, String(process.pid));
    // fds stay open while it runs, as the instrumentation's do; its exit leaves only the pins
    for (const name of ['alloc_map', 'tracked_spans']) pinMap(name, path.join(dir, name), 4096);
  } else {
    throw new Error(`unknown role ${role}`);
  }
  process.stdout.write(`ready ${process.pid}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (l) => l.trim() === 'exit' && process.exit(0));
  rl.on('close', () => process.exit(0));
}

try {
  main();
} catch (e) {
  process.stdout.write(`error ${(e as Error).message}\n`);
  process.exit(1);
}
