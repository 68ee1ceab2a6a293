// Self-test of the world fixtures against the real kernel. bpftool is the oracle here
// (pinleak itself never runs it). Needs root and `npx tsc -p .` (the agent imports dist/).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { AGENT_PATH, createWorld, mntNsOf, readMountinfo, topMountAt, type World } from './world.js';
import { start } from '../helpers.js';

const BPFTOOL = '/usr/sbin/bpftool';
const T = 30_000;

function bpftool(...args: string[]): any {
  return JSON.parse(execFileSync(BPFTOOL, ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

function mapExists(id: number): boolean {
  try {
    bpftool('map', 'show', 'id', String(id));
    return true;
  } catch {
    return false;
  }
}

/** The kernel frees an object after its last reference goes, not always synchronously: poll. */
async function eventually(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function pidAlive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

/** What "cleanup leaves nothing" means, checked from outside the world. */
async function expectNothingLeft(world: World, left: { pids?: number[]; mapIds?: number[]; paths?: string[] } = {}): Promise<void> {
  expect(fs.existsSync(world.dir)).toBe(false);
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(world.dir));
  expect(mounts).toEqual([]);
  for (const pid of left.pids ?? []) expect(pidAlive(pid), `pid ${pid} alive`).toBe(false);
  for (const p of left.paths ?? []) expect(fs.existsSync(p), `${p} exists`).toBe(false);
  for (const id of left.mapIds ?? []) await eventually(() => !mapExists(id), `map ${id} freed`);
}

const root = process.getuid?.() === 0;
if (!fs.existsSync(new URL('../../dist/kernel/bpf.js', import.meta.url))) {
  throw new Error('dist/kernel/bpf.js is missing: run `npx tsc -p .` first');
}

describe.skipIf(!root)('test world', () => {
  it('creates maps, programs and cgroup links that bpftool sees, and answers errors', async () => {
    const world = createWorld();
    const pids: number[] = [];
    let cgroup = '';
    let ids: number[] = [];
    try {
      cgroup = await world.makeCgroup();
      expect(fs.statSync(cgroup).isDirectory()).toBe(true);
      const agent = await world.spawnAgent();
      pids.push(agent.pid);
      expect(agent.mntNs).toBe(world.hostMntNs);

      const hash = await agent.call({ op: 'map', name: 'w_hash', type: 'hash' });
      const array = await agent.call({ op: 'map', name: 'w_array', type: 'array', mmapable: true });
      expect(bpftool('map', 'show', 'id', String(hash.id))).toMatchObject({ id: hash.id, name: 'w_hash', type: 'hash' });
      expect(bpftool('map', 'show', 'id', String(array.id))).toMatchObject({ id: array.id, name: 'w_array', type: 'array' });

      const prog = await agent.call({ op: 'prog', name: 'w_prog', mapFd: hash.fd });
      expect(bpftool('prog', 'show', 'id', String(prog.id))).toMatchObject({ id: prog.id, name: 'w_prog', type: 'cgroup_skb', map_ids: [hash.id] });

      const link = await agent.call({ op: 'link', progFd: prog.fd!, cgroup });
      expect(bpftool('link', 'show', 'id', String(link.id))).toMatchObject({ id: link.id, type: 'cgroup', prog_id: prog.id, attach_type: 'cgroup_inet_ingress' });
      expect(await agent.call({ op: 'info', fd: link.fd! })).toEqual({ kind: 'link', id: link.id });
      ids = [hash.id!, array.id!];

      // errors come back as answers; call() turns them into rejections
      expect((await agent.send({ op: 'close', fd: 9999 })).error).toMatch(/not one of this agent's/);
      expect((await agent.send({ op: 'map', type: 'hash', mmapable: true })).error).toMatch(/EINVAL/);
      expect((await agent.send({ op: 'nope' } as never)).error).toMatch(/unknown op/);
      await expect(agent.call({ op: 'open', path: '/nonexistent/pin' })).rejects.toThrow(/ENOENT/);
      // the agent is still in step after errors
      expect((await agent.call({ op: 'close', fd: hash.fd! })).ok).toBe(true);
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world, { pids, mapIds: ids, paths: [cgroup] });
  }, T);

  it('mounts a private host bpffs; pins survive their creator; another agent reopens them', async () => {
    const world = createWorld();
    const pids: number[] = [];
    let mapId = 0;
    try {
      const bpffs = await world.mountBpffs();
      expect(bpffs.path.startsWith(world.dir + '/')).toBe(true);
      const entry = topMountAt(bpffs.path)!;
      expect(entry).toMatchObject({ fstype: 'bpf', dev: bpffs.dev });
      // private: no "shared:N" optional field on the mount
      const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.startsWith(`${entry.id} `))!;
      expect(line).not.toMatch(/ shared:/);

      const creator = await world.spawnAgent();
      pids.push(creator.pid);
      const map = await creator.call({ op: 'map', name: 'w_pinned' });
      mapId = map.id!;
      const pin = path.join(bpffs.path, 'app', 'deep', 'm'); // parents made on the way
      await creator.call({ op: 'pin', fd: map.fd!, path: pin });
      expect(fs.statSync(pin).isFile()).toBe(true);
      await creator.exit();
      expect(pidAlive(creator.pid)).toBe(false);
      expect(mapExists(mapId)).toBe(true); // only the pin holds it now

      const reader = await world.spawnAgent();
      pids.push(reader.pid);
      expect(await reader.call({ op: 'open', path: pin })).toMatchObject({ kind: 'map', id: mapId });
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world, { pids, mapIds: [mapId] });
  }, T);

  it('cleanup unpins its pins from a bpffs it does not own, and leaves that bpffs mounted', async () => {
    const owner = createWorld();
    const pinner = createWorld();
    let mapId = 0;
    let pin = '';
    try {
      const bpffs = await owner.mountBpffs('shared-bpffs', { options: 'mode=0700' });
      expect(topMountAt(bpffs.path)).toMatchObject({ fstype: 'bpf', dev: bpffs.dev });
      const agent = await pinner.spawnAgent();
      const map = await agent.call({ op: 'map', name: 'w_foreign' });
      mapId = map.id!;
      pin = path.join(bpffs.path, 'x', 'm');
      await agent.call({ op: 'pin', fd: map.fd!, path: pin });
      await pinner.cleanup();
      await expectNothingLeft(pinner, { pids: [agent.pid], mapIds: [mapId], paths: [pin] });
      expect(topMountAt(bpffs.path)?.dev).toBe(bpffs.dev);
      expect(fs.existsSync(path.join(bpffs.path, 'x'))).toBe(true); // the directory was not the pin's: kept
    } finally {
      await pinner.cleanup();
      await owner.cleanup();
    }
    await expectNothingLeft(owner);
  }, T);

  it('mmap keeps a map held after its fd is closed', async () => {
    const world = createWorld();
    let pid = 0;
    let mapId = 0;
    try {
      const agent = await world.spawnAgent();
      pid = agent.pid;
      const map = await agent.call({ op: 'map', name: 'w_mmap', type: 'array', mmapable: true });
      mapId = map.id!;
      const m = await agent.call({ op: 'mmap', fd: map.fd! });
      expect(m.address).toMatch(/^0x[0-9a-f]+$/);
      await agent.call({ op: 'close', fd: map.fd! });
      const fdTargets = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; }
      });
      expect(fdTargets).not.toContain('anon_inode:bpf-map');
      const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
      expect(maps).toMatch(new RegExp(`^${m.address!.slice(2)}-\\S+ r--s .*anon_inode:bpf-map$`, 'm'));
      expect(mapExists(mapId)).toBe(true);
      // a hash map cannot be mmapped
      const hash = await agent.call({ op: 'map', type: 'hash' });
      expect((await agent.send({ op: 'mmap', fd: hash.fd! })).error).toMatch(/mmap/);
      await agent.kill();
      await eventually(() => !mapExists(mapId), 'mmapped map freed when its holder died');
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world, { pids: [pid] });
  }, T);

  it('runs an agent in its own mount namespace, with its own bpffs', async () => {
    const world = createWorld();
    let pid = 0;
    let mapId = 0;
    try {
      const agent = await world.spawnAgent({ unshareMount: true });
      pid = agent.pid;
      // unshare exec'd node: the pid we track is the agent itself, not an unshare parent
      expect(fs.readlinkSync(`/proc/${pid}/exe`)).toBe(fs.realpathSync(process.execPath));
      expect(agent.mntNs).not.toBe(world.hostMntNs);
      expect(agent.mntNs).toBe(mntNsOf(pid));

      const inner = path.join(world.dir, 'inner-bpffs');
      const fsm = await agent.call({ op: 'mountBpffs', path: inner });
      expect(fsm.dev).toMatch(/^\d+:\d+$/);
      expect(readMountinfo(pid).some((m) => m.mountPoint === inner && m.fstype === 'bpf' && m.dev === fsm.dev)).toBe(true);
      expect(readMountinfo('self').some((m) => m.mountPoint === inner)).toBe(false);

      const map = await agent.call({ op: 'map', name: 'w_inner' });
      mapId = map.id!;
      await agent.call({ op: 'pin', fd: map.fd!, path: `${inner}/p/m` });
      await agent.call({ op: 'close', fd: map.fd! });
      expect(fs.existsSync(`${inner}/p/m`)).toBe(false); // not visible from the host namespace
      expect(fs.existsSync(`/proc/${pid}/root${inner}/p/m`)).toBe(true); // but through the agent's root
      expect(mapExists(mapId)).toBe(true);

      // the namespace, its bpffs and the pin die with the only process in it
      await agent.kill();
      await eventually(() => !mapExists(mapId), 'map pinned in a dead namespace freed');
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world, { pids: [pid], mapIds: [mapId] });
  }, T);

  it('builds a mount namespace no process is in, with a bpffs and a pinned map', async () => {
    const world = createWorld();
    let ns: Awaited<ReturnType<World['namespaceWithoutProcess']>> | undefined;
    try {
      ns = await world.namespaceWithoutProcess({ mapName: 'w_detached' });
      expect(topMountAt(ns.nsfsPath)).toMatchObject({ fstype: 'nsfs', root: `mnt:[${ns.mntNs}]` });
      expect(Number(fs.statSync(ns.nsfsPath).ino)).toBe(ns.mntNs);

      // no process is in it
      const inNs = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
        try { return mntNsOf(Number(p)) === ns!.mntNs; } catch { return false; }
      });
      expect(inNs).toEqual([]);

      // but it is there, with its bpffs and the pin, for whoever enters it through the file
      const inside = execFileSync('nsenter', [`--mount=${ns.nsfsPath}`, 'cat', '/proc/self/mountinfo'], { encoding: 'utf8' });
      expect(inside.split('\n').some((l) => l.split(' ')[4] === ns!.bpffsMountPoint && l.includes(' - bpf ') && l.split(' ')[2] === ns!.bpffsDev)).toBe(true);
      execFileSync('nsenter', [`--mount=${ns.nsfsPath}`, 'test', '-f', ns.pinPath]);
      expect(fs.existsSync(ns.pinPath)).toBe(false);
      expect(readMountinfo().some((m) => m.dev === ns!.bpffsDev)).toBe(false);
      expect(bpftool('map', 'show', 'id', String(ns.pinnedMapId))).toMatchObject({ name: 'w_detached', type: 'hash' });
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world, { mapIds: ns ? [ns.pinnedMapId] : [] });
  }, T);

  it('bind-mounts a bpffs (same superblock) and a file', async () => {
    const world = createWorld();
    try {
      const bpffs = await world.mountBpffs();
      const bound = await world.bindMount(bpffs.path, 'bound');
      expect(bound.path).toBe(path.join(world.dir, 'bound'));
      expect(bound.dev).toBe(bpffs.dev);
      const agent = await world.spawnAgent();
      const map = await agent.call({ op: 'map', name: 'w_bound' });
      await agent.call({ op: 'pin', fd: map.fd!, path: path.join(bound.path, 'm') });
      expect(fs.existsSync(path.join(bpffs.path, 'm'))).toBe(true);

      fs.writeFileSync(path.join(world.dir, 'src-file'), 'hello');
      const file = await world.bindMount(path.join(world.dir, 'src-file'), path.join(world.dir, 'sub', 'dst-file'));
      expect(fs.readFileSync(file.path, 'utf8')).toBe('hello');
    } finally {
      await world.cleanup();
    }
    await expectNothingLeft(world);
  }, T);

  it('cleanup copes with what the test already undid, reports failures, and runs only once', async () => {
    const world = createWorld();
    const order: string[] = [];
    let pids: number[] = [];
    let cgroup = '';
    let mapId = 0;
    let caught: unknown;
    try {
      const bpffs = await world.mountBpffs();
      cgroup = await world.makeCgroup();
      const a = await world.spawnAgent();
      const b = await world.spawnAgent({ unshareMount: true });
      pids = [a.pid, b.pid];
      const map = await a.call({ op: 'map', name: 'w_undone' });
      mapId = map.id!;
      await a.call({ op: 'pin', fd: map.fd!, path: path.join(bpffs.path, 'm') });
      world.onCleanup('first registered', () => { order.push('first'); });
      world.onCleanup('fails', () => { throw new Error('deliberate'); });
      world.onCleanup('last registered', () => { order.push('last'); });

      // the test undoes some of it itself
      fs.unlinkSync(path.join(bpffs.path, 'm'));
      await a.kill();
      execFileSync('umount', [bpffs.path]);
      fs.rmdirSync(cgroup);
      await world.cleanup();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AggregateError);
    expect((caught as AggregateError).errors.map((e: Error) => e.message)).toEqual(['fails: deliberate']);
    expect(order).toEqual(['last', 'first']);
    await world.cleanup(); // a second call does nothing
    await expectNothingLeft(world, { pids, mapIds: [mapId], paths: [cgroup] });
  }, T);

  it('an agent exits on its own when the process driving it goes away', async () => {
    // a driver that starts an agent, prints its pid and exits without a word to it
    const script = `
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, [${JSON.stringify(AGENT_PATH)}], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
      c.stdout.once('data', (d) => { process.stdout.write(String(c.pid)); process.exit(0); });
    `;
    const driver = start(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    driver.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await driver.ended;
    const pid = Number(out);
    expect(pid).toBeGreaterThan(0);
    try {
      await eventually(() => {
        // exited, and (its parent gone) reaped by init; a zombie would still have /proc/<pid>
        try { return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] === 'Z'; } catch { return true; }
      }, `agent ${pid} exits on stdin EOF`);
    } finally {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone, as expected */ }
    }
  }, T);

  it('the exit hook kills, unmounts and removes what a world left when its process exits without cleanup()', async () => {
    // Node 20 cannot run TypeScript: transpile world.ts next to agent.mjs (AGENT_PATH is relative to it)
    const here = path.dirname(AGENT_PATH);
    const compiled = path.join(here, `.exit-probe-${process.pid}.mjs`);
    const source = fs.readFileSync(path.join(here, 'world.ts'), 'utf8');
    fs.writeFileSync(compiled, ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText);
    const script = `
      const { createWorld } = await import(${JSON.stringify(compiled)});
      const world = createWorld();
      const bpffs = await world.mountBpffs();
      const agent = await world.spawnAgent({ unshareMount: true });
      const ns = await world.namespaceWithoutProcess();
      console.log(JSON.stringify({ dir: world.dir, pid: agent.pid, bpffs: bpffs.path, nsfs: ns.nsfsPath, mapId: ns.pinnedMapId }));
      process.exit(0); // no cleanup()
    `;
    let left: { dir: string; pid: number; bpffs: string; nsfs: string; mapId: number };
    try {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      left = JSON.parse(out);
    } finally {
      fs.rmSync(compiled, { force: true });
    }
    expect(topMountAt(left.bpffs)).toBeUndefined();
    expect(topMountAt(left.nsfs)).toBeUndefined();
    await eventually(() => !pidAlive(left.pid), `agent ${left.pid} killed`);
    await eventually(() => !mapExists(left.mapId), 'map of the detached namespace freed');
    expect(fs.existsSync(left.dir)).toBe(false);
  }, T);
});
