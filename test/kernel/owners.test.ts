// Issue 14 on the real kernel: owner rules that claim only their own layout, and stale
// persistent pins. A program bpftool loaded into a real xdp/ directory and left after its
// device is gone is a leftover (orphaned), not iproute2's; an iproute2 tc/globals map is
// persistent and not stale while a live program uses it, persistent and stale after.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Agent, type Mount, type World } from '../world/world.js';
import { worldForFile, type FileWorld } from '../world/for-file.js';
import { bpftool, pinleak, pinleakJson } from '../helpers.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';

let world: World;
let db: FileWorld['db'];
let bpffs: Mount;
let netns: string;

const XDP_IR = fileURLToPath(new URL('../world/elf/xdp-pass.ll', import.meta.url));
const ip = (...args: string[]) => execFileSync('ip', ['-n', netns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const tc = (...args: string[]) => execFileSync('ip', ['netns', 'exec', netns, 'tc', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function pinIn(doc: SnapshotDoc, p: string): Pin {
  const found = doc.pins.find((x) => x.instance === bpffs.dev && x.path === p);
  if (!found) throw new Error(`no pin ${p} in snapshot ${doc.snapshot.id}`);
  return found;
}

/** A veth pair in the test netns (this kernel has no dummy driver); deleting one end deletes both. */
function addDevice(name: string): void {
  ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  ip('link', 'set', name, 'up');
}

worldForFile(async (t) => {
  world = t.world;
  db = t.db;
  bpffs = await world.mountBpffs('own');
  netns = `pinleak-own-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  execFileSync('ip', ['netns', 'add', netns]);
  // deleting the netns deletes every device in it, and with them their tc and XDP attachments
  world.onCleanup(`netns ${netns}`, () => {
    execFileSync('ip', ['netns', 'del', netns]);
  });
});

describe('a program bpftool loaded under a real xdp/ directory (not iproute2\'s symlink)', () => {
  let leftover: Pin;
  let progId: number;

  beforeAll(() => {
    const obj = path.join(world.dir, 'xdp-pass.o');
    execFileSync('llc', ['-march=bpf', '-filetype=obj', XDP_IR, '-o', obj]);
    fs.mkdirSync(path.join(bpffs.path, 'xdp'));
    const pinPath = path.join(bpffs.path, 'xdp', 'leftover');
    execFileSync('bpftool', ['prog', 'load', obj, pinPath, 'type', 'xdp'], { stdio: ['ignore', 'pipe', 'pipe'] });
    world.onCleanup(`pin ${pinPath}`, () => fs.rmSync(pinPath, { force: true }));
    progId = (bpftool(['prog', 'show', 'pinned', pinPath]) as { id: number }).id;
    const dev = `xo${process.pid % 100000}`;
    addDevice(dev);
    ip('link', 'set', 'dev', dev, 'xdpgeneric', 'pinned', pinPath);
    expect(ip('link', 'show', dev)).toMatch(new RegExp(`prog/xdp id ${progId}`));
    ip('link', 'del', dev);
    leftover = pinIn(pinleakJson(['scan'], { db: db.db }), '/xdp/leftover');
  });

  it('is the program bpftool loaded, found in a real directory the walk entered', () => {
    expect(fs.lstatSync(path.join(bpffs.path, 'xdp')).isDirectory()).toBe(true);
    expect(leftover.object).toMatchObject({ kind: 'prog', id: progId, type: 'xdp', name: 'xdp_pass' });
  });

  it('left after its device is gone, it is a leftover nobody owns: orphaned, not persistent', () => {
    expect(leftover.owner.tool).toBeNull();
    expect(leftover.status).toBe('orphaned');
    expect(leftover.stale).toBeNull();
    expect(leftover.reasons.join(' ')).not.toMatch(/iproute2|on purpose/);
  });
});

describe('iproute2: a map in tc/globals used by a program that tc attached', () => {
  let agent: Agent;
  let mapId: number;
  let progFd: number;
  const dev = `to${process.pid % 100000}`;
  let live: SnapshotDoc;
  let gone: SnapshotDoc;
  let later: SnapshotDoc;

  beforeAll(async () => {
    // No clang here to build a tc object whose map lands in tc/globals: the map is pinned where
    // iproute2 pins a PIN_GLOBAL_NS map, and a program using it is attached with tc.
    agent = await world.spawnAgent();
    const map = await agent.call({ op: 'map', name: 'jmp_map', type: 'array' });
    mapId = map.id!;
    await agent.call({ op: 'pin', fd: map.fd!, path: path.join(bpffs.path, 'tc/globals/jmp_map') });
    const prog = await agent.call({ op: 'prog', name: 'cls_main', type: 'sched_cls', mapFd: map.fd! });
    progFd = prog.fd!;
    await agent.call({ op: 'close', fd: map.fd! });
    const progPin = path.join(bpffs.path, 'cls_main');
    await agent.call({ op: 'pin', fd: progFd, path: progPin });
    addDevice(dev);
    tc('qdisc', 'add', 'dev', dev, 'clsact');
    tc('filter', 'add', 'dev', dev, 'ingress', 'bpf', 'da', 'pinned', progPin);
    expect(tc('filter', 'show', 'dev', dev, 'ingress')).toMatch(new RegExp(`id ${prog.id}`));
    fs.unlinkSync(progPin); // tc keeps the program; only the map stays pinned, as iproute2 leaves it
    live = pinleakJson(['scan'], { db: db.db });

    // the device goes, and with it the filter; the program's last user (the agent) lets go
    ip('link', 'del', dev);
    await agent.call({ op: 'close', fd: progFd });
    gone = pinleakJson(['scan'], { db: db.db });
    later = pinleakJson(['scan'], { db: db.db });
  });

  it('while its program is alive: in use, owned by iproute2 on purpose, not stale; what uses it comes first', () => {
    const p = pinIn(live, '/tc/globals/jmp_map');
    expect(p.object).toMatchObject({ kind: 'map', id: mapId });
    expect(p.owner).toMatchObject({ tool: 'iproute2', persistent: true });
    expect(p.status).toBe('in-use');
    expect(p.stale).toBeNull();
    expect(p.reasons[0]).toMatch(/^used by program \d+ \(cls_main\)/);
    expect(p.reasons[1]).toBe('iproute2 keeps its pins on purpose (rule tc/globals/*)');
    expect(p.reasons).toHaveLength(2);
  });

  it('after its device is deleted: persistent and stale, since the first scan that found it unused', () => {
    const first = pinIn(gone, '/tc/globals/jmp_map');
    expect(first.status).toBe('persistent');
    expect(first.stale).toEqual({ since: gone.snapshot.takenAt, sinceSnapshot: gone.snapshot.id });
    expect(first.reasons).toContain('iproute2 keeps its pins on purpose (rule tc/globals/*)');
    const p = pinIn(later, '/tc/globals/jmp_map');
    expect(p.status).toBe('persistent');
    expect(p.stale).toEqual({ since: gone.snapshot.takenAt, sinceSnapshot: gone.snapshot.id });
    expect(p.reasons.at(-1)).toMatch(new RegExp(`^stale: nothing alive has used it since snapshot ${gone.snapshot.id} \\(\\d+ s\\)$`));
    expect(later.summary.stale!.pins).toBeGreaterThanOrEqual(1);
  });

  it('is never a leak: leaks shows it only with --stale; pins --stale lists it', () => {
    const id = String(later.snapshot.id);
    const leaks = pinleakJson(['leaks', id, '--instance', bpffs.dev], { db: db.db });
    expect(leaks.pins.map((x) => x.path)).not.toContain('/tc/globals/jmp_map');
    const withStale = pinleakJson(['leaks', id, '--instance', bpffs.dev, '--stale'], { db: db.db });
    expect(withStale.pins.find((x) => x.path === '/tc/globals/jmp_map')).toMatchObject({ status: 'persistent', stale: { sinceSnapshot: gone.snapshot.id } });
    const text = pinleak(['leaks', id, '--instance', bpffs.dev, '--stale'], { db: db.db });
    expect(text.stdout).toMatch(/stale persistent pin.* kept on purpose by their owner, unused \(not leaks\)/);
    expect(text.stdout).toMatch(/iproute2 in bpffs \S+: 1 pin/);
    expect(text.stdout).toContain(`pinleak clean ${id} --status persistent --stale --instance ${bpffs.dev}`);
    const stalePins = pinleakJson(['pins', id, '--instance', bpffs.dev, '--stale'], { db: db.db });
    expect(stalePins.pins.map((x) => x.path)).toEqual(['/tc/globals/jmp_map']);
  });

  it('shows in the metric of stale bytes by owner', () => {
    const r = pinleak(['export', 'prometheus'], { db: db.db });
    expect(r.code).toBe(0);
    const m = /^pinleak_stale_bytes\{owner="iproute2"\} (\d+)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(pinIn(later, '/tc/globals/jmp_map').object!.memlockBytes);
  });

  it('clean removes it only when asked by name, re-checked right before the unlink', () => {
    const id = String(later.snapshot.id);
    const place = ['--instance', bpffs.dev];
    expect(pinleak(['clean', id, ...place, '--status', 'persistent'], { db: db.db }).stderr).toMatch(/^pinleak: clean removes persistent pins only with --stale/);
    const byDefault = pinleakJson<{ removed: Pin[] }>(['clean', id, ...place, '--yes'], { db: db.db });
    expect(byDefault.removed.map((x) => x.path)).not.toContain('/tc/globals/jmp_map');
    const notOldEnough = pinleakJson<{ removed: Pin[] }>(['clean', id, ...place, '--status', 'persistent', '--stale', '--older-than', '1h', '--yes'], { db: db.db });
    expect(notOldEnough.removed).toEqual([]);
    const done = pinleakJson<{ removed: Pin[]; dryRun: boolean }>(['clean', id, ...place, '--status', 'persistent', '--stale', '--yes'], { db: db.db });
    expect(done.dryRun).toBe(false);
    expect(done.removed.map((x) => x.path)).toEqual(['/tc/globals/jmp_map']);
    expect(fs.existsSync(path.join(bpffs.path, 'tc/globals/jmp_map'))).toBe(false);
  });
});
