// A zombie has exited (SPEC section 2): a creator that exited while its parent does not
// reap it (common in containers without an init) makes its pin leaked, not orphaned with
// "still running".
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { worldForFile } from '../world/for-file.js';
import type { Mount } from '../world/world.js';
import { pinleakJson, NODE_COMM } from '../helpers.js';
import { readStat } from '../../src/kernel/procfs.js';

const PIN_AND_EXIT = fileURLToPath(new URL('../world/pin-and-exit.mjs', import.meta.url));

let bpffs: Mount;
const t = worldForFile(async ({ world }) => {
  bpffs = await world.mountBpffs('zombie');
});

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a zombie creator', () => {
  it('has exited: its pin is leaked, and the zombie is no holder or live process', async () => {
    const target = path.join(bpffs.path, 'app', 'by-zombie');
    // sh starts the creator in the background, then becomes `sleep`, which never reaps it
    const parent = spawn('sh', ['-c', `"$@" & echo $! ; exec sleep 300`, 'sh', process.execPath, PIN_AND_EXIT, target, '0', '1500'],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    t.world.onCleanup(`unreaping parent ${parent.pid}`, () => {
      if (parent.exitCode === null) process.kill(parent.pid!, 'SIGKILL'); // its zombie child goes to init, which reaps it
    });
    let out = '';
    parent.stdout!.on('data', (d) => (out += String(d)));
    const creator = await until('the creator pid', () => /^(\d+)\n/.exec(out)?.[1]).then(Number);
    await until('the pin', () => out.includes(`pinned ${target}`));

    // while the creator holds the map: one stored snapshot sees it holding (creator evidence)
    const held = pinleakJson(['scan'], { db: t.db.db }).pins.find((p) => p.path === '/app/by-zombie')!;
    expect(held.status).toBe('held');
    expect(held.holders.map((h) => h.pid)).toEqual([creator]);

    await until('the creator to be a zombie', () => readStat(creator)?.state === 'Z');
    expect(fs.existsSync(`/proc/${creator}`)).toBe(true); // unreaped: its pid and start time are still there

    const now = pinleakJson(['scan'], { db: t.db.db }).pins.find((p) => p.path === '/app/by-zombie')!;
    expect(now.holders).toEqual([]);
    expect(now.creator).toMatchObject({ pid: creator, alive: false, source: 'history' });
    expect(now.status).toBe('leaked');
    expect(now.reasons.join(' ')).toMatch(new RegExp(`creator ${creator} \\(${NODE_COMM}\\) seen in snapshot \\d+ has exited`));
    expect(now.reasons.join(' ')).not.toMatch(/still running/);
  });
});
