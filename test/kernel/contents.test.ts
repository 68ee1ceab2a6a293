// Map contents and perf events as references, on the real kernel: datapaths built by a
// loader that exits, each once alive and once with its users gone.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { type Agent, type Mount, type World } from '../world/world.js';
import { worldForFile, type FileWorld } from '../world/for-file.js';
import { bpftool, pinleakJson, NODE_COMM } from '../helpers.js';
import { returns, storeInMap, tailCall, u32hex, u64hex, usesMaps } from '../world/programs.js';
import { execFileSync, spawn } from 'node:child_process';
import { AttachType, ProgType, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT, PERF_COUNT_SW_CPU_CLOCK } from '../../src/kernel/abi.js';
import { fdById, mapLookup, closeFd, objGet, progTestRun } from '../../src/kernel/bpf.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';

let world: World;
let db: FileWorld['db'];
let bpffs: Mount;
let holder: Agent; // a live process that keeps links, maps and perf events open
let sockets: Agent; // a live process with a TCP connection on loopback
let doc: SnapshotDoc;
const ids: Record<string, number> = {};
const fds: Record<string, number> = {};

const pinIn = (d: SnapshotDoc, p: string): Pin => {
  const found = d.pins.find((x) => x.instance === bpffs.dev && x.path === p);
  if (!found) throw new Error(`no pin ${p}`);
  return found;
};
const pin = (p: string) => pinIn(doc, p);

/** `bpftool map dump` of a map with 4-byte keys and values: key -> value (bpftool prints raw bytes without BTF) */
function bpftoolDump(mapId: number): Map<number, number> {
  const word = (v: number | string[]) => (typeof v === 'number' ? v : Buffer.from(v.map((b) => parseInt(b, 16))).readUInt32LE(0));
  const dump = bpftool(['map', 'dump', 'id', String(mapId)]) as { key: number | string[]; value: number | string[] }[];
  return new Map(dump.map((e) => [word(e.key), word(e.value)]));
}

worldForFile(async (t) => {
  world = t.world;
  db = t.db;
  bpffs = await world.mountBpffs('contents');
  const at = (p: string) => path.join(bpffs.path, p);
  const cg = await world.makeCgroup();
  const loader = await world.spawnAgent();
  holder = await world.spawnAgent();
  const make = async (key: string, cmd: Parameters<Agent['call']>[0], pinPath?: string) => {
    const a = await loader.call(cmd);
    ids[key] = a.id!;
    fds[key] = a.fd!;
    if (pinPath) await loader.call({ op: 'pin', fd: a.fd!, path: at(pinPath) });
    return a;
  };

  // A tail call chain, twice: one stays attached, one loses its root later.
  for (const chain of ['tail', 'dead']) {
    await make(`${chain}Data`, { op: 'map', type: 'array', name: `${chain}_data`, keySize: 4, valueSize: 8, maxEntries: 1 }, `${chain}/data`);
    await make(`${chain}Slot`, { op: 'prog', name: `${chain}_slot`, insns: storeInMap(fds[`${chain}Data`]!, 42) }, `${chain}/slot`);
    await make(`${chain}Pa`, { op: 'map', type: 'prog_array', name: `${chain}_pa`, keySize: 4, valueSize: 4, maxEntries: 8 }, `${chain}/pa`);
    await loader.call({ op: 'update', fd: fds[`${chain}Pa`]!, key: u32hex(3), value: u32hex(fds[`${chain}Slot`]!) });
    await make(`${chain}Entry`, { op: 'prog', name: `${chain}_entry`, insns: tailCall(fds[`${chain}Pa`]!, 3) });
    await make(`${chain}Link`, { op: 'link', progFd: fds[`${chain}Entry`]!, cgroup: cg });
    // the root: a link a live process holds (a pinned link nobody holds is orphaned itself)
    fds[`${chain}HeldLink`] = (await holder.call({ op: 'grab', pid: loader.pid, fd: fds[`${chain}Link`]! })).fd!;
  }

  // Map-in-map: an array and a hash of maps used by a live program; and an outer map nothing uses.
  await make('inner', { op: 'map', type: 'array', name: 'mim_inner', maxEntries: 1 }, 'mim/inner');
  await make('outer', { op: 'map', type: 'array_of_maps', name: 'mim_outer', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: fds.inner }, 'mim/outer');
  await loader.call({ op: 'update', fd: fds.outer!, key: u32hex(2), value: u32hex(fds.inner!) });
  await make('hinner', { op: 'map', type: 'array', name: 'mim_hinner', maxEntries: 1 }, 'mim/hinner');
  await make('houter', { op: 'map', type: 'hash_of_maps', name: 'mim_houter', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: fds.hinner }, 'mim/houter');
  await loader.call({ op: 'update', fd: fds.houter!, key: u32hex(7), value: u32hex(fds.hinner!) });
  await make('mimUser', { op: 'prog', name: 'mim_user', insns: usesMaps([fds.outer!, fds.houter!]) });
  await make('mimLink', { op: 'link', progFd: fds.mimUser!, cgroup: cg });
  await holder.call({ op: 'grab', pid: loader.pid, fd: fds.mimLink! });
  await make('lostInner', { op: 'map', type: 'array', name: 'lost_inner', maxEntries: 1 }, 'lost/inner');
  await make('lostOuter', { op: 'map', type: 'array_of_maps', name: 'lost_outer', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: fds.lostInner }, 'lost/outer');
  await loader.call({ op: 'update', fd: fds.lostOuter!, key: u32hex(0), value: u32hex(fds.lostInner!) });

  // devmap and cpumap entries that run XDP programs; the maps held by a live process
  await make('devProg', { op: 'prog', name: 'dev_prog', progType: ProgType.XDP, expectedAttachType: AttachType.XDP_DEVMAP, insns: returns(2) }, 'dev/prog');
  await make('devmap', { op: 'map', type: 'devmap', name: 'dev_map', keySize: 4, valueSize: 8, maxEntries: 4 }, 'dev/map');
  await loader.call({ op: 'update', fd: fds.devmap!, key: u32hex(0), value: u32hex(1) + u32hex(fds.devProg!) }); // lo, the program
  fds.devmapHeld = (await holder.call({ op: 'grab', pid: loader.pid, fd: fds.devmap! })).fd!;
  await make('cpuProg', { op: 'prog', name: 'cpu_prog', progType: ProgType.XDP, expectedAttachType: AttachType.XDP_CPUMAP, insns: returns(2) }, 'dev/cpu_prog');
  await make('cpumap', { op: 'map', type: 'cpumap', name: 'cpu_map', keySize: 4, valueSize: 8, maxEntries: 1 }, 'dev/cpumap');
  await loader.call({ op: 'update', fd: fds.cpumap!, key: u32hex(0), value: u32hex(192) + u32hex(fds.cpuProg!) }); // queue size, the program
  fds.cpumapHeld = (await holder.call({ op: 'grab', pid: loader.pid, fd: fds.cpumap! })).fd!;

  // a sockmap with an sk_msg program and both ends of a live TCP connection in it
  sockets = await world.spawnAgent();
  const pair = await sockets.call({ op: 'tcpPair' });
  await make('msgProg', { op: 'prog', name: 'msg_prog', progType: ProgType.SK_MSG, insns: returns(1) }, 'sock/prog');
  await make('sockmap', { op: 'map', type: 'sockmap', name: 'sock_map', keySize: 4, valueSize: 8, maxEntries: 4 }, 'sock/map');
  await loader.call({ op: 'attach', progFd: fds.msgProg!, targetFd: fds.sockmap!, attachType: AttachType.SK_MSG_VERDICT });
  for (const [i, fd] of pair.fds!.entries()) {
    const sock = await loader.call({ op: 'grab', pid: sockets.pid, fd });
    await loader.call({ op: 'update', fd: fds.sockmap!, key: u32hex(i), value: u64hex(sock.fd!) });
  }

  // perf events a live process holds: a software one running a perf_event program, a tracepoint one
  const perfProg = await holder.call({ op: 'prog', name: 'perf_prog', progType: ProgType.PERF_EVENT, insns: returns(0) });
  ids.perfProg = perfProg.id!;
  await holder.call({ op: 'pin', fd: perfProg.fd!, path: at('perf/prog') });
  fds.perfEvent = (await holder.call({ op: 'perfEvent', type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_CPU_CLOCK, pid: 0, cpu: -1, progFd: perfProg.fd! })).fd!;
  await holder.call({ op: 'close', fd: perfProg.fd! });
  const tracefs = path.join(world.dir, 'tracefs');
  fs.mkdirSync(tracefs);
  execFileSync('mount', ['-t', 'tracefs', 'nodev', tracefs]);
  world.onCleanup(`tracefs at ${tracefs}`, () => execFileSync('umount', [tracefs]));
  const tpId = Number(fs.readFileSync(path.join(tracefs, 'events/sched/sched_switch/id'), 'utf8'));
  const tpProg = await holder.call({ op: 'prog', name: 'tp_prog', progType: ProgType.TRACEPOINT, insns: returns(0) });
  ids.tpProg = tpProg.id!;
  await holder.call({ op: 'pin', fd: tpProg.fd!, path: at('perf/tp_prog') });
  fds.tpEvent = (await holder.call({ op: 'perfEvent', type: PERF_TYPE_TRACEPOINT, config: tpId, pid: -1, cpu: 0, progFd: tpProg.fd! })).fd!;
  await holder.call({ op: 'close', fd: tpProg.fd! });

  // uprobe_multi links on one process each: a live one, and one whose process is a zombie
  const sleep = fs.realpathSync('/usr/bin/sleep');
  const offset = elfEntryOffset(sleep);
  const live = spawnOwned(sleep, ['600']);
  // sh execs sleep, which never reaps its child: that child stays a zombie once it exits
  const parent = spawnOwned('/bin/sh', ['-c', `${sleep} 1 & exec ${sleep} 600`]);
  const zombie = await childOf(parent);
  for (const [name, target] of [['up', live], ['zombie', zombie]] as const) {
    await make(`${name}Prog`, { op: 'prog', name: `${name}_prog`, progType: ProgType.KPROBE, expectedAttachType: AttachType.TRACE_UPROBE_MULTI, insns: returns(0) }, `${name}/prog`);
    await make(`${name}Link`, { op: 'uprobeMulti', progFd: fds[`${name}Prog`]!, path: sleep, offset, pid: target }, `${name}/link`);
  }
  ids.livePid = live;
  for (let i = 0; fs.readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1]![0] !== 'Z'; i++) {
    if (i > 100) throw new Error(`pid ${zombie} did not become a zombie`);
    await new Promise((r) => setTimeout(r, 50));
  }

  await loader.exit();
  doc = pinleakJson(['scan'], { db: db.db });
});

/** A process the test starts; killed by pid at cleanup. */
function spawnOwned(cmd: string, args: string[]): number {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  const pid = child.pid!;
  world.onCleanup(`${cmd} pid ${pid}`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return pid;
}

async function childOf(pid: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (kids) return Number(kids.split(' ')[0]);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`pid ${pid} started no child`);
}

/** The file offset of an ELF executable's entry point: an instruction a uprobe can sit on. */
function elfEntryOffset(file: string): number {
  const b = fs.readFileSync(file);
  const entry = b.readBigUInt64LE(24);
  const phoff = Number(b.readBigUInt64LE(32));
  const [size, count] = [b.readUInt16LE(54), b.readUInt16LE(56)];
  for (let i = 0; i < count; i++) {
    const ph = phoff + i * size;
    if (b.readUInt32LE(ph) !== 1) continue; // PT_LOAD
    const [off, vaddr, filesz] = [b.readBigUInt64LE(ph + 8), b.readBigUInt64LE(ph + 16), b.readBigUInt64LE(ph + 32)];
    if (entry >= vaddr && entry < vaddr + filesz) return Number(entry - vaddr + off);
  }
  throw new Error(`${file}: entry point in no loadable segment`);
}

describe('tail calls', () => {
  it('a program in a slot of a live prog array is in-use, with the exact reason; so are its maps', () => {
    const pa = pin('/tail/pa');
    expect(pa.object).toMatchObject({ kind: 'map', id: ids.tailPa, type: 'prog_array' });
    expect(pa.status).toBe('in-use');
    expect(pa.reasons[0]).toMatch(new RegExp(`^used by program ${ids.tailEntry} \\(tail_entry\\), behind live cgroup link ${ids.tailLink} \\(cgroup \\d+\\), held by pid ${holder.pid}`));

    const slot = pin('/tail/slot');
    expect(slot.status).toBe('in-use');
    expect(slot.usedBy).toContainEqual({ kind: 'map', id: ids.tailPa, via: `tail call slot 3 of prog array ${ids.tailPa}` });
    expect(slot.reasons[0]).toMatch(new RegExp(`^tail call slot 3 of prog array ${ids.tailPa}, used by program ${ids.tailEntry} \\(tail_entry\\), behind live cgroup link ${ids.tailLink}`));

    const data = pin('/tail/data');
    expect(data.status).toBe('in-use');
    expect(data.reasons[0]).toMatch(new RegExp(`^used by program ${ids.tailSlot} \\(tail_slot\\), tail call slot 3 of prog array ${ids.tailPa}`));
  });

  it('bpftool sees the same slot', () => {
    expect([...bpftoolDump(ids.tailPa!)]).toEqual([[3, ids.tailSlot]]);
  });
});

describe('map-in-map', () => {
  it('inner maps of a live array of maps and hash of maps are in-use', () => {
    const inner = pin('/mim/inner');
    expect(inner.status).toBe('in-use');
    expect(inner.reasons[0]).toMatch(new RegExp(`^inner map at key 2 of array_of_maps ${ids.outer}, used by program ${ids.mimUser} \\(mim_user\\), behind live cgroup link ${ids.mimLink}`));
    const hinner = pin('/mim/hinner');
    expect(hinner.status).toBe('in-use');
    expect(hinner.usedBy).toEqual([{ kind: 'map', id: ids.houter, via: `inner map at key 7 of hash_of_maps ${ids.houter}` }]);
  });

  it('an inner map of an outer map nothing uses is orphaned, like the outer map', () => {
    expect(pin('/lost/outer').status).toBe('orphaned');
    const inner = pin('/lost/inner');
    expect(inner.status).toBe('orphaned');
    expect(inner.usedBy).toEqual([{ kind: 'map', id: ids.lostOuter, via: `inner map at key 0 of array_of_maps ${ids.lostOuter}` }]);
  });
});

describe('devmap and cpumap', () => {
  it('the program of a devmap entry is in-use while the devmap is', () => {
    expect(pin('/dev/map').status).toBe('held');
    const p = pin('/dev/prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toBe(`program of devmap ${ids.devmap} entry 0 (ifindex 1), held by pid ${holder.pid} (${NODE_COMM})`);
    // bpftool's witness: entry 0 is {ifindex 1, that program's id}, the other slots are empty
    const dump = bpftool(['map', 'dump', 'id', String(ids.devmap)]) as { key: string[]; value: string[] | { error: string } }[];
    const entries = dump.filter((e) => Array.isArray(e.value)).map((e) => Buffer.from((e.value as string[]).map((b) => parseInt(b, 16))));
    expect(entries.map((v) => [v.readUInt32LE(0), v.readUInt32LE(4)])).toEqual([[1, ids.devProg]]);
  });

  it('the program of a cpumap entry is in-use while the cpumap is', () => {
    const p = pin('/dev/cpu_prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toBe(`program of cpumap ${ids.cpumap} cpu 0, held by pid ${holder.pid} (${NODE_COMM})`);
  });
});

describe('sockmap', () => {
  it('a sockmap with live sockets in it is in-use, and so is its sk_msg program', () => {
    const m = pin('/sock/map');
    expect(m.status).toBe('in-use');
    expect(m.usedBy).toEqual([{ kind: 'sockets', id: 2, via: 'holds 2 sockets' }]);
    expect(m.reasons[0]).toBe('holds 2 sockets');
    const p = pin('/sock/prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toBe(`sk_msg verdict program of sockmap ${ids.sockmap}, holds 2 sockets`);
    // bpftool's witness: the program attached to the map
    const attached = bpftool(['prog', 'show', 'id', String(ids.msgProg)]) as { id: number };
    expect(attached.id).toBe(ids.msgProg);
  });
});

describe('perf events', () => {
  it('a tracepoint perf event a live process holds keeps its program in use, by name', () => {
    const p = pin('/perf/tp_prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toBe(`perf event (tracepoint sched_switch) held by pid ${holder.pid} (${NODE_COMM}) fd ${fds.tpEvent}`);
    const perf = bpftool(['perf', 'list']) as { pid: number; fd: number; prog_id: number }[];
    expect(perf).toContainEqual(expect.objectContaining({ pid: holder.pid, fd: fds.tpEvent, prog_id: ids.tpProg }));
  });

  it('a software perf event keeps perf_event programs in use, though the kernel does not name which', () => {
    const p = pin('/perf/prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toMatch(new RegExp(`^perhaps the program of a perf event held by pid ${holder.pid} \\(${NODE_COMM}\\) fd ${fds.perfEvent} `));
  });
});

describe('links on a process', () => {
  it('a uprobe_multi link on a live process keeps its program in use, and names the process', () => {
    const p = pin('/up/prog');
    expect(p.status).toBe('in-use');
    expect(p.reasons[0]).toBe(`behind live uprobe_multi link ${ids.upLink} (process ${ids.livePid} (sleep))`);
    expect(pin('/up/link').status).toBe('orphaned'); // a pinned link nobody holds
  });

  it('a uprobe_multi link whose process is a zombie is leaked, and keeps nothing alive', () => {
    const link = pin('/zombie/link');
    expect(link.status).toBe('leaked');
    expect(link.reasons.join(' ')).toMatch(/uprobe_multi link target is gone/);
    const p = pin('/zombie/prog');
    expect(p.status).toBe('orphaned');
    expect(p.usedBy).toEqual([{ kind: 'link', id: ids.zombieLink, via: `behind defunct uprobe_multi link ${ids.zombieLink}` }]);
  });
});

describe('the true leaks, and clean', () => {
  it('a chain whose root is detached is orphaned; clean removes only that, and the live tail call still runs', async () => {
    await holder.call({ op: 'close', fd: fds.deadHeldLink! }); // the link goes, and with it the entry program
    for (const fd of [fds.devmapHeld!, fds.cpumapHeld!, fds.perfEvent!, fds.tpEvent!]) await holder.call({ op: 'close', fd });
    await sockets.kill(); // its sockets close and leave the sockmap
    const after = pinleakJson(['scan'], { db: db.db });
    for (const p of ['/dead/pa', '/dead/slot', '/dead/data', '/dev/map', '/dev/prog', '/dev/cpumap', '/dev/cpu_prog', '/sock/map', '/sock/prog', '/perf/prog', '/perf/tp_prog']) {
      expect(pinIn(after, p).status, p).toBe('orphaned');
    }
    for (const p of ['/tail/pa', '/tail/slot', '/tail/data', '/mim/inner', '/mim/hinner']) expect(pinIn(after, p).status).toBe('in-use');

    const result = pinleakJson<{ removed: Pin[] }>(['clean', '--status', 'orphaned,leaked', '--yes', '--instance', bpffs.dev], { db: db.db });
    // the pinned links nobody holds are orphaned too (SPEC): clean unpins them, and the
    // zombie's link, leaked, with its program
    expect(result.removed.map((p) => p.path).sort()).toEqual([
      '/dead/data', '/dead/pa', '/dead/slot', '/dev/cpu_prog', '/dev/cpumap', '/dev/map', '/dev/prog', '/lost/inner', '/lost/outer',
      '/perf/prog', '/perf/tp_prog', '/sock/map', '/sock/prog', '/up/link', '/zombie/link', '/zombie/prog',
    ]);
    for (const p of ['tail/pa', 'tail/slot', 'tail/data', 'mim/inner', 'mim/hinner', 'mim/outer', 'mim/houter']) {
      expect(fs.existsSync(path.join(bpffs.path, p))).toBe(true);
    }

    // the slot still holds the program, and a run of the entry program reaches it
    expect([...bpftoolDump(ids.tailPa!)]).toEqual([[3, ids.tailSlot]]);
    const entry = fdById('prog', ids.tailEntry!);
    const data = objGet(path.join(bpffs.path, 'tail/data'));
    try {
      expect(entry).not.toBeNull();
      expect(progTestRun(entry!)).toBe(1);
      expect(mapLookup(data, Buffer.alloc(4), 8)!.readBigUInt64LE(0)).toBe(42n);
    } finally {
      if (entry !== null) closeFd(entry);
      closeFd(data);
    }
  });
});

describe('hostile maps', () => {
  it('a prog array larger than the read budget is read in part, named in the errors, and blocks clean', async () => {
    const loader = await world.spawnAgent();
    const big = await loader.call({ op: 'map', type: 'prog_array', name: 'huge_pa', keySize: 4, valueSize: 4, maxEntries: 100_000 });
    await loader.call({ op: 'pin', fd: big.fd!, path: path.join(bpffs.path, 'huge/pa') });
    await loader.exit();
    const scan = pinleakJson(['scan'], { db: db.db });
    expect(scan.errors).toContainEqual({
      scope: `map ${big.id}`,
      message: `read 65536 of 100000 entries of prog array ${big.id} and stopped (bounded); the unread entries were not followed, so what only they reference is not known to be in use`,
    });
    // clean's last re-check reads the same contents, and an incomplete read proves nothing
    const dry = pinleakJson<{ removed: Pin[]; skipped: { pin: Pin; why: string }[] }>(['clean', '--status', 'orphaned', '--instance', bpffs.dev], { db: db.db });
    expect(dry.removed).toEqual([]);
    expect(dry.skipped.find((s) => s.pin.path === '/huge/pa')?.why).toMatch(new RegExp(`^cannot confirm it is unused: map ${big.id}: read 65536 of 100000`));
  });
});
