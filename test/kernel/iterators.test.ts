// readKernelCounts against independent truth on the real kernel: /proc/<pid>/fd and
// fdinfo for files, bpftool for ids and types, and the reference-count identities of
// KERNEL-FACTS for objects built here with known referrers.
import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { type Agent, type Mount } from '../world/world.js';
import { worldForFile } from '../world/for-file.js';
import { bpftool } from '../helpers.js';
import {
  readKernelCounts, iteratorSupport, ownIteratorIds, closeIterators, iteratorProgram, PROG_MAPS_MAX, type KernelCounts,
} from '../../src/kernel/iterators.js';
import { MAP_TYPES, PROG_TYPES, LINK_TYPES, IterTaskInfo, ProgType, AttachType, MapType } from '../../src/kernel/abi.js';
import { loadProgram, createIterLink, runIterator } from '../../src/kernel/loader.js';
import { kernelBtf } from '../../src/kernel/btf.js';
import { closeFd, fdById, mapCreate, progBindMap, progInfo, progLoad, trivialProgram } from '../../src/kernel/bpf.js';
import { pageSize, readBpfFdinfo } from '../../src/kernel/procfs.js';

const tag = `${process.pid % 100000}`;
let bpffs: Mount;
let agent: Agent;
let sharer: number;
let counts: KernelCounts;
let bpftoolIds: { maps: Set<number>; progs: Set<number>; links: Set<number> };
const ids: Record<string, number> = {};
const fds: Record<string, number> = {};
let fakeFd: number;

type Shown = { id: number; type: string; prog_id?: number };
const bpftoolShow = (what: 'map' | 'prog' | 'link') => bpftool([what, 'show']) as Shown[];

/** (fd, kind, id) of every BPF object fd of a process, from /proc: the oracle for `files`. */
function procFiles(pid: number): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = { 'anon_inode:bpf-map': 'map', 'anon_inode:bpf-prog': 'prog', 'anon_inode:bpf_link': 'link', 'anon_inode:bpf-link': 'link' }[target];
    if (!kind) continue;
    const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    const id = new RegExp(`^${kind}_id:\\s*(\\d+)`, 'm').exec(info);
    if (!id) throw new Error(`no ${kind}_id in /proc/${pid}/fdinfo/${fd}`);
    out.push(`${fd} ${kind} ${id[1]}`);
  }
  return out.sort();
}

const filesOf = (pid: number) => counts.files.filter((f) => f.pid === pid);

worldForFile(async ({ world }) => {
  bpffs = await world.mountBpffs();
  const at = (p: string) => path.join(bpffs.path, p);
  const cg = await world.makeCgroup();
  agent = await world.spawnAgent();

  // A: a map pinned at 2 paths, held by one fd, used by one program
  const a = await agent.call({ op: 'map', name: `it_a_${tag}` });
  ids.mapA = a.id!;
  fds.mapA = a.fd!;
  await agent.call({ op: 'pin', fd: a.fd!, path: at('a1') });
  await agent.call({ op: 'pin', fd: a.fd!, path: at('a2') });
  // the program: held by its fd, pinned once, attached by one cgroup link
  const p = await agent.call({ op: 'prog', name: `it_p_${tag}`, mapFd: a.fd! });
  ids.prog = p.id!;
  fds.prog = p.fd!;
  await agent.call({ op: 'pin', fd: p.fd!, path: at('p') });
  const l = await agent.call({ op: 'link', progFd: p.fd!, cgroup: cg });
  ids.link = l.id!;
  fds.link = l.fd!;
  await agent.call({ op: 'pin', fd: l.fd!, path: at('l') });
  // the link re-opened from its pin: a second file, named bpf-link instead of bpf_link
  const l2 = await agent.call({ op: 'open', path: at('l') });
  fds.linkReopened = l2.fd!;

  // B: an mmapable map held by an fd, a dup of it, an mmap of it, and a child's inherited copy
  const b = await agent.call({ op: 'map', name: `it_b_${tag}`, type: 'array', mmapable: true });
  ids.mapB = b.id!;
  fds.mapB = b.fd!;
  await agent.call({ op: 'mmap', fd: b.fd! });
  sharer = (await agent.call({ op: 'share', fd: b.fd! })).pid!;
  // after the child: dup(2) drops O_CLOEXEC, so the child would inherit it too
  fds.mapBdup = (await agent.call({ op: 'dup', fd: b.fd! })).fd!;

  // C: an mmapable map pinned once and mapped, its fd closed: only the mapping holds it
  const c = await agent.call({ op: 'map', name: `it_c_${tag}`, type: 'array', mmapable: true });
  ids.mapC = c.id!;
  await agent.call({ op: 'pin', fd: c.fd!, path: at('c') });
  await agent.call({ op: 'mmap', fd: c.fd! });
  await agent.call({ op: 'close', fd: c.fd! });

  // a regular file whose name is a BPF object's: must not be taken for one
  const fake = path.join(world.dir, 'bpf-map');
  fs.writeFileSync(fake, 'not a map');
  fakeFd = fs.openSync(fake, 'r');
  world.onCleanup('close the fake bpf-map file', () => fs.closeSync(fakeFd));

  const before = { maps: bpftoolShow('map'), progs: bpftoolShow('prog'), links: bpftoolShow('link') };
  counts = readKernelCounts();
  const after = { maps: bpftoolShow('map'), progs: bpftoolShow('prog'), links: bpftoolShow('link') };
  // other tests on this host come and go: objects bpftool saw both before and after existed throughout
  const stable = (x: Shown[], y: Shown[]) => new Set(x.map((o) => o.id).filter((id) => y.some((o) => o.id === id)));
  bpftoolIds = { maps: stable(before.maps, after.maps), progs: stable(before.progs, after.progs), links: stable(before.links, after.links) };
});

afterAll(() => closeIterators());

describe('readKernelCounts on the real kernel', () => {
  it('is supported here', () => {
    expect(iteratorSupport()).toEqual({ ok: true });
  });

  it('sees every map, program and link bpftool sees, with the same types', () => {
    const missing = (kind: 'maps' | 'progs' | 'links') => [...bpftoolIds[kind]].filter((id) => !counts[kind].has(id));
    expect(missing('maps')).toEqual([]);
    expect(missing('progs')).toEqual([]);
    expect(missing('links')).toEqual([]);
    const shown = bpftoolShow('map');
    for (const id of [ids.mapA, ids.mapB, ids.mapC]) {
      expect(MAP_TYPES[counts.maps.get(id)!.type]).toBe(shown.find((m) => m.id === id)!.type);
    }
    expect(PROG_TYPES[counts.progs.get(ids.prog)!.type]).toBe(bpftoolShow('prog').find((x) => x.id === ids.prog)!.type);
    const link = bpftoolShow('link').find((x) => x.id === ids.link)!;
    expect(LINK_TYPES[counts.links.get(ids.link)!.type]).toBe(link.type);
    expect(counts.links.get(ids.link)!.progId).toBe(link.prog_id);
  });

  it('names every map as bpftool does (a scan names pinned maps from it), and no map it did not read', () => {
    const shown = bpftoolShow('map') as (Shown & { name?: string })[];
    for (const m of shown.filter((x) => bpftoolIds.maps.has(x.id))) expect({ id: m.id, name: counts.mapName(m.id) }).toEqual({ id: m.id, name: m.name ?? '' });
    expect(counts.mapName(0)).toBeNull();
  });

  it('reads every program\'s info as BPF_OBJ_GET_INFO_BY_FD gives it, and gives none for a program of more maps than it reads', () => {
    const fds: number[] = [];
    try {
      const few = [0, 1].map((i) => mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: `pi_few_${i}` }));
      fds.push(...few);
      const two = progLoad({ type: ProgType.SOCKET_FILTER, insns: trivialProgram(few[0]), name: 'pi_two_maps' });
      fds.push(two);
      progBindMap(two, few[1]!);
      const many = progLoad({ type: ProgType.SOCKET_FILTER, insns: trivialProgram(), name: 'pi_many_maps' });
      fds.push(many);
      for (let i = 0; i <= PROG_MAPS_MAX; i++) {
        const m = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: `pi_m${i}` });
        fds.push(m);
        progBindMap(many, m);
      }
      const now = readKernelCounts();
      let compared = 0;
      for (const id of now.progs.keys()) {
        const fd = fdById('prog', id);
        if (fd === null) continue; // unloaded since
        try {
          const info = progInfo(fd);
          const k = now.progInfo(id);
          if (info.mapIds.length > PROG_MAPS_MAX) {
            expect(k).toBeNull();
            continue;
          }
          expect({ id, name: k?.name, loadTimeNs: k?.loadTimeNs, uid: k?.uid, mapIds: k?.mapIds, memlock: k && k.pages * pageSize() })
            .toEqual({ id, name: info.name, loadTimeNs: info.loadTimeNs, uid: info.createdByUid, mapIds: info.mapIds, memlock: readBpfFdinfo('self', fd)!.memlock });
          compared++;
        } finally {
          closeFd(fd);
        }
      }
      expect(compared).toBeGreaterThan(1);
      expect(now.progInfo(progInfo(two).id)!.mapIds).toEqual(progInfo(two).mapIds);
      expect(progInfo(two).mapIds).toHaveLength(2);
      expect(now.progInfo(progInfo(many).id)).toBeNull();
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  });

  it('map: refcnt = iterator + 2 pins + 1 file + 1 program, usercnt = pins + files', () => {
    expect(counts.maps.get(ids.mapA)).toMatchObject({ refcnt: 1 + 2 + 1 + 1, usercnt: 2 + 1 });
  });

  it('program: refcnt = iterator + pin + file + link', () => {
    expect(counts.progs.get(ids.prog)!.refcnt).toBe(1 + 1 + 1 + 1);
  });

  it('link: refcnt = iterator + pin + 2 files (as created and re-opened)', () => {
    expect(counts.links.get(ids.link)!.refcnt).toBe(1 + 1 + 2);
  });

  it('files match /proc/<pid>/fd and fdinfo exactly, for the agent and the child', () => {
    const mine = (pid: number) => filesOf(pid).map((f) => `${f.fd} ${f.kind} ${f.id}`).sort();
    expect(mine(agent.pid)).toEqual(procFiles(agent.pid));
    expect(mine(sharer)).toEqual(procFiles(sharer));
    expect(mine(sharer)).toEqual([`3 map ${ids.mapB}`]);
  });

  it('a link is recognised both as created (bpf_link) and re-opened (bpf-link)', () => {
    const links = filesOf(agent.pid).filter((f) => f.kind === 'link').map((f) => f.fd).sort((x, y) => x - y);
    expect(links).toEqual([fds.link, fds.linkReopened].sort((x, y) => x - y));
  });

  it('an fd, its dup, a child\'s inherited copy and an mmap are one file', () => {
    const fileOf = (pid: number, fd: number) => counts.files.find((f) => f.pid === pid && f.fd === fd)?.file;
    const file = fileOf(agent.pid, fds.mapB);
    expect(file).toBeTypeOf('bigint');
    expect(fileOf(agent.pid, fds.mapBdup)).toBe(file);
    expect(fileOf(sharer, 3)).toBe(file);
    const vmas = counts.vmas.filter((v) => v.mapId === ids.mapB);
    expect(vmas).toHaveLength(1);
    expect(vmas[0]).toMatchObject({ pid: agent.pid, file });
    // one file, however many fds and mappings: refcnt = iterator + 1, usercnt = 1
    expect(counts.maps.get(ids.mapB)).toMatchObject({ refcnt: 2, usercnt: 1 });
    // distinct files are distinct
    expect(fileOf(agent.pid, fds.mapA)).not.toBe(file);
  });

  it('a mapping with its fd closed is an exact holder: the vma names the map', () => {
    expect(filesOf(agent.pid).some((f) => f.id === ids.mapC && f.kind === 'map')).toBe(false);
    const vmas = counts.vmas.filter((v) => v.mapId === ids.mapC);
    expect(vmas).toHaveLength(1);
    const maps = fs.readFileSync(`/proc/${agent.pid}/maps`, 'utf8').split('\n');
    const range = `${vmas[0]!.start.toString(16)}-${vmas[0]!.end.toString(16)}`;
    expect(maps.find((line) => line.startsWith(range + ' '))).toMatch(/anon_inode:bpf-map$/);
    expect(counts.maps.get(ids.mapC)).toMatchObject({ refcnt: 1 + 1 + 1, usercnt: 1 + 1 });
  });

  it('reports each fd once, under the thread group id', () => {
    const keys = counts.files.map((f) => `${f.pid}:${f.fd}`);
    expect(new Set(keys).size).toBe(keys.length);
    // node runs several threads; their ids are not pids in the output
    const threads = fs.readdirSync(`/proc/${agent.pid}/task`).map(Number).filter((t) => t !== agent.pid);
    expect(threads.length).toBeGreaterThan(0);
    expect(counts.files.some((f) => threads.includes(f.pid))).toBe(false);
    expect(counts.vmas.some((v) => threads.includes(v.pid))).toBe(false);
  });

  it('a regular file named like a BPF object is not one', () => {
    expect(fs.readlinkSync(`/proc/self/fd/${fakeFd}`)).toMatch(/\/bpf-map$/);
    expect(filesOf(process.pid).some((f) => f.fd === fakeFd)).toBe(false);
  });

  it('loads its programs once: a second read reuses them', () => {
    const own = ownIteratorIds();
    expect(own.progs).toHaveLength(7); // bpf_map, bpf_prog, bpf_link, task_file, task_vma, task, prog_info
    // its own objects are in the counts like any other (the caller discounts them)
    for (const id of own.progs) expect(counts.progs.has(id)).toBe(true);
    const again = readKernelCounts();
    // the same programs and links, not a second set (its cost is measured in the commit, not asserted on a shared host)
    expect(ownIteratorIds()).toEqual(own);
    for (const id of own.progs) expect(again.progs.get(id)).toEqual(counts.progs.get(id));
    expect(again.maps.get(ids.mapA)).toEqual(counts.maps.get(ids.mapA));
  });

  it('a task iterator link with iter_info visits one process only', () => {
    const btf = kernelBtf();
    const progFd = loadProgram({
      name: 'pl_one_task', type: ProgType.TRACING, insns: iteratorProgram(btf, 'task_file'),
      expectedAttachType: AttachType.TRACE_ITER, attachBtfId: btf.find('func', 'bpf_iter_task_file'),
    });
    try {
      const info = Buffer.alloc(koffi.sizeof(IterTaskInfo));
      koffi.encode(info, IterTaskInfo, { tid: 0, pid: agent.pid, pid_fd: 0 });
      const linkFd = createIterLink(progFd, info);
      try {
        const out = runIterator(linkFd, 1 << 20, 'one task');
        // 24-byte records whose first field is the tgid
        const pids = Array.from({ length: out.length / 24 }, (_, i) => out.readUInt32LE(i * 24));
        expect(pids).toHaveLength(procFiles(agent.pid).length);
        expect(new Set(pids)).toEqual(new Set([agent.pid]));
      } finally {
        closeFd(linkFd);
      }
    } finally {
      closeFd(progFd);
    }
  });
});
