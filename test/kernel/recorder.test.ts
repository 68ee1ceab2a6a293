// The pin recorder against the real kernel: short-lived pinners in mount namespaces and
// cgroups of their own, every way of naming the path, failed pins, a burst.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecorder, recorderProgram, recorderUnsupported, ticksOfNs, PATH_BOUND, type PinRecord, type Recorder } from '../../src/kernel/recorder.js';
import { kernelBtf } from '../../src/kernel/btf.js';
import { bpftool, bpftoolSees, eventually, NODE_COMM } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import { runPinner, type Pinned } from '../world/pinner.js';

const t = worldForFile();
let rec: Recorder;
let bpffs: string;
let cgroup: string;
const seen: PinRecord[] = [];

beforeAll(async () => {
  bpffs = (await t.world.mountBpffs()).path;
  cgroup = await t.world.makeCgroup();
  rec = startRecorder();
  t.world.onCleanup('recorder', () => rec.close());
});
afterAll(() => rec?.close());

/** Records so far whose path ends with `tail` (the recorder sees the whole host). */
function recordsOf(tail: string): PinRecord[] {
  seen.push(...rec.drain());
  return seen.filter((r) => r.path.endsWith(tail));
}

function expectIdentity(r: PinRecord, p: Pinned): void {
  expect(r).toMatchObject({ pid: p.pid, startTime: p.startTime, comm: NODE_COMM, ppid: p.ppid, kind: p.kind, id: p.id, mntNs: p.mntNs });
}

describe('pin recorder', () => {
  it('records a map pinned by a process that lived a few ms in its own mount namespace and cgroup', async () => {
    const where = path.join(bpffs, `map-${process.pid}`);
    const p = await runPinner({ kind: 'map', path: where, cgroup, unshareMount: true });
    expect(p.mntNs).not.toBe(fs.statSync('/proc/self/ns/mnt').ino);
    const [r, ...more] = recordsOf(where);
    expect(more).toEqual([]);
    expectIdentity(r!, p);
    expect(r).toMatchObject({ ret: 0, path: where, pathTruncated: false, fileFlags: 0, pathFd: 0 });
    // the cgroup id is the cgroup directory's inode
    expect(r!.cgroupId).toBe(BigInt(fs.statSync(cgroup).ino));
    // the parent is the shell that joined the cgroup and exec'ed node: gone, but recorded
    expect(r!.parentStartTime).toBeLessThanOrEqual(p.startTime);
  });

  it('records programs and links, and the object behind the fd', async () => {
    for (const kind of ['prog', 'link'] as const) {
      const where = path.join(bpffs, `${kind}-${process.pid}`);
      const p = await runPinner({ kind, path: where, cgroup });
      const rs = recordsOf(where);
      expect(rs).toHaveLength(1);
      expectIdentity(rs[0]!, p);
      expect(rs[0]!.ret).toBe(0);
    }
  });

  it('records a relative path and a path fd as passed, with the object that makes them joinable', async () => {
    const rel = path.join(bpffs, `rel-${process.pid}`);
    const p = await runPinner({ kind: 'map', path: rel, mode: 'rel' });
    const [r] = recordsOf(`rel-${process.pid}`);
    expect(r!.path).toBe(`rel-${process.pid}`);
    expectIdentity(r!, p);

    const viaFd = path.join(bpffs, `pathfd-${process.pid}`);
    const q = await runPinner({ kind: 'map', path: viaFd, mode: 'pathfd' });
    const [s] = recordsOf(`pathfd-${process.pid}`);
    expect(s!.path).toBe(`pathfd-${process.pid}`);
    expect(s!.fileFlags).toBe(1 << 14);
    expect(s!.pathFd).toBeGreaterThan(2);
    expectIdentity(s!, q);
  });

  it('records a failed pin with its error', async () => {
    const where = path.join(bpffs, `twice-${process.pid}`);
    const p = await runPinner({ kind: 'map', path: where, mode: 'twice' });
    expect(p.error).toBe('EEXIST');
    const rs = recordsOf(where);
    expect(rs.map((r) => r.ret)).toEqual([0, -17]);
    for (const r of rs) expectIdentity(r, p);
  });

  it('keeps a long path bounded and says it was truncated', async () => {
    const dir = path.join(bpffs, 'd'.repeat(200));
    fs.mkdirSync(dir);
    const where = path.join(dir, `long-${'x'.repeat(100)}`);
    const p = await runPinner({ kind: 'map', path: where });
    seen.push(...rec.drain());
    const r = seen.find((x) => x.pid === p.pid)!;
    expect(r.pathTruncated).toBe(true);
    expect(r.path).toBe(where.slice(0, PATH_BOUND - 1));
    expect(r.id).toBe(p.id);
  });

  it('loses none of a burst of 400 pins, or counts what it lost', async () => {
    const base = path.join(bpffs, `burst-${process.pid}`);
    const runs = await Promise.all([0, 1, 2, 3].map((i) => runPinner({ kind: 'map', path: `${base}-${i}`, count: 100 })));
    seen.push(...rec.drain());
    const got = seen.filter((r) => r.path.startsWith(`${base}-`) && runs.some((p) => p.pid === r.pid));
    expect(got.length + rec.drops()).toBe(400);
    expect(rec.drops()).toBe(0); // the queue holds 8192: a burst of 400 fits
    expect(new Set(got.map((r) => r.path)).size).toBe(400);
  }, 60_000);

  it('is attached through its own fds only: bpftool sees its program and link, then neither after close', async () => {
    const other = startRecorder();
    const links = bpftool(['link', 'show']) as { id: number; prog_id: number }[];
    expect(bpftoolSees(other.progId, other.linkId)).toEqual({ prog: true, link: true });
    expect(links.find((x) => x.id === other.linkId)?.prog_id).toBe(other.progId);
    other.close();
    other.close(); // idempotent
    const gone = () => { const s = bpftoolSees(other.progId, other.linkId); return !s.prog && !s.link; };
    expect(await eventually(gone)).toBe(true);
  });
});

describe('pin recorder, where it cannot run', () => {
  it('says in one line that it supports only x86_64', () => {
    expect(recorderUnsupported('x64')).toBeNull();
    expect(recorderUnsupported('arm64')).toBe('the pin recorder supports only x86_64, not arm64');
    expect(() => recorderProgram(kernelBtf(), 0, 0, 'arm64')).toThrow(/^recorder on arm64 \(only x86_64 is supported\): EOPNOTSUPP/);
  });

  it('converts boot nanoseconds to clock ticks as /proc/<pid>/stat does', () => {
    expect(ticksOfNs(2_595_353_436_056n, 100)).toBe(259_535);
    expect(ticksOfNs(9_999_999n, 100)).toBe(0);
  });
});
