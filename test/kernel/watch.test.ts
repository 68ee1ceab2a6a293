// pinleak watch on the real kernel: short-lived pinners (a "container" of their own), the
// next scan calls their pins leaked with the recorded pinner; one watch per database; a
// SIGKILLed watch leaves nothing attached (bpftool as the witness).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pin, SnapshotDoc } from '../../src/model.js';
import { openStore, listPinRecords, watchSessions, type Store } from '../../src/store/index.js';
import { readBootId } from '../../src/kernel/procfs.js';
import { CLI, pinleak, bpftoolSees, eventually, tempDb, NODE_COMM } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import { runPinner, PINNER_PATH, type Pinned } from '../world/pinner.js';
import type { RunResult } from '../../src/cli/run.js';
import { assertDocument, assertPin } from '../contract.js';

interface Watch {
  child: ChildProcess;
  progId: number;
  linkId: number;
  /** resolves with the exit code and signal */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** every stdout line so far */
  lines: string[];
  /** its stderr so far (warnings) */
  stderr: () => string;
}

const watches: Watch[] = [];

/** Starts `pinleak watch` and waits for its first line (the recorder attached). */
async function startWatch(db: string, scanEvery = '1s', extra: string[] = []): Promise<Watch> {
  const child = spawn(process.execPath, [CLI, '--db', db, 'watch', '--scan-every', scanEvery, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const first = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l);
      if (lines.length === 1) resolve(l);
    });
    child.on('exit', () => reject(new Error(`watch exited before its first line: ${stderr}`)));
    setTimeout(() => reject(new Error(`watch did not start in 30 s: ${stderr}`)), 30_000);
  });
  const m = /recording every pin \(program (\d+), link (\d+)\)/.exec(first);
  if (!m) throw new Error(`unexpected first line: ${first}`);
  const w = { child, progId: Number(m[1]), linkId: Number(m[2]), exited, lines, stderr: () => stderr };
  watches.push(w);
  return w;
}

/** Waits until watch has stored a snapshot in which `check` holds. */
async function snapshotWhere(db: string, check: (d: SnapshotDoc) => boolean, ms = 60_000): Promise<SnapshotDoc> {
  let doc: SnapshotDoc | null = null;
  const ok = await eventually(() => {
    // only our bpffs: other suites may have thousands of pins on the host
    const r = pinleak(['pins', '--instance', bpffsDev, '--json'], { db });
    if (r.code !== 0) return false; // no snapshot stored yet
    doc = JSON.parse(r.stdout) as SnapshotDoc;
    return check(doc);
  }, ms);
  if (!ok) {
    const w = watches.at(-1);
    throw new Error(`no snapshot matched in ${ms} ms; the last one: ${JSON.stringify(doc && (doc as SnapshotDoc).snapshot)}; watch said: ${w?.lines.join(' | ')} ${w?.stderr()}`);
  }
  return doc!;
}

/** A read of the database watch is writing; null when it is busy right now (the caller polls again). */
function readStore<T>(db: string, read: (s: Store) => T): T | null {
  let s: Store;
  try {
    s = openStore(db, { access: 'read' });
  } catch {
    return null;
  }
  try {
    return read(s);
  } finally {
    s.close();
  }
}

const t = worldForFile();
let bpffs: string;
let bpffsDev: string;
let cgroup: string;
let watch: Watch;
let older: string;

beforeAll(async () => {
  ({ path: bpffs, dev: bpffsDev } = await t.world.mountBpffs());
  cgroup = await t.world.makeCgroup();
  // made before the watch: renamed later, it has a new ctime and no record
  older = path.join(bpffs, 'older');
  await runPinner({ kind: 'map', path: older });
  t.world.onCleanup('watch processes', async () => {
    for (const w of watches) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
      await w.exited;
    }
  });
  watch = await startWatch(t.db.db, '1s', ['--textfile', path.join(t.db.dir, 'pinleak.prom')]);
}, 60_000);
afterAll(async () => {
  for (const w of watches) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
});

const pinAt = (d: SnapshotDoc, p: string) => d.pins.find((x) => x.instance && x.mountPaths.some((m) => m.path === p));

function expectRecordedCreator(pin: Pin | undefined, p: Pinned): void {
  expect(pin?.status).toBe('leaked');
  expect(pin!.object).toMatchObject({ kind: p.kind, id: p.id });
  expect(pin!.creator).toMatchObject({ pid: p.pid, startTime: p.startTime, comm: NODE_COMM, alive: false, source: 'watch' });
  expect(pin!.reasons).toContainEqual(expect.stringMatching(new RegExp(`^pinned by ${p.pid} \\(${NODE_COMM}\\) at \\d\\d:\\d\\d:\\d\\d, exited$`)));
}

describe('pinleak watch', () => {
  it('calls a pin leaked in the next scan, with the exact pinner of a process that lived a few ms in its own mount namespace and cgroup', async () => {
    const where = {
      map: path.join(bpffs, 'map'), prog: path.join(bpffs, 'prog'), link: path.join(bpffs, 'link'), rel: path.join(bpffs, 'rel'),
    };
    const map = await runPinner({ kind: 'map', path: where.map, cgroup, unshareMount: true });
    const prog = await runPinner({ kind: 'prog', path: where.prog, cgroup });
    const link = await runPinner({ kind: 'link', path: where.link, cgroup });
    const rel = await runPinner({ kind: 'map', path: where.rel, mode: 'rel' });
    const doc = await snapshotWhere(t.db.db, (d) => Object.values(where).every((p) => pinAt(d, p)?.creator?.source === 'watch'));
    doc.pins.forEach((p) => assertPin(p)); // a filtered document: each pin as the contract has it
    expectRecordedCreator(pinAt(doc, where.map), map);
    expectRecordedCreator(pinAt(doc, where.prog), prog);
    expectRecordedCreator(pinAt(doc, where.rel), rel);
    // a pinned cgroup link keeps its program attached: the link leaked, its creator is the pinner
    expect(pinAt(doc, where.link)?.creator).toMatchObject({ pid: link.pid, startTime: link.startTime, source: 'watch' });
    // the metrics of every scan, with the recorder's state
    const prom = fs.readFileSync(path.join(t.db.dir, 'pinleak.prom'), 'utf8');
    expect(prom).toMatch(/^pinleak_watch_recording 1$/m);
    expect(prom).toMatch(/^pinleak_watch_dropped_pins 0$/m);
    expect(prom).toMatch(/^pinleak_snapshot_id \d+$/m);
  }, 120_000);

  it('stores failed pins with their error, and what the kernel saw of each pin', async () => {
    const where = path.join(bpffs, 'twice');
    const p = await runPinner({ kind: 'map', path: where, mode: 'twice', cgroup });
    expect(p.error).toBe('EEXIST');
    let rows: ReturnType<typeof listPinRecords> = [];
    await eventually(() => {
      rows = readStore(t.db.db, (s) => listPinRecords(s, readBootId()).filter((r) => r.pid === p.pid)) ?? [];
      return rows.length === 2;
    }, 20_000);
    expect(rows.map((r) => r.ret)).toEqual([0, -17]);
    expect(rows[1]).toMatchObject({ kind: 'map', id: p.id, path: where, startTime: p.startTime, comm: NODE_COMM, cgroupPath: `/${path.basename(cgroup)}` });
    expect(rows[1]!.cgroupId).toBe(BigInt(fs.statSync(cgroup).ino));
  }, 60_000);

  it('says when a pin appeared while it recorded but no pin of its object was recorded (a rename)', async () => {
    const renamed = path.join(bpffs, 'renamed');
    fs.renameSync(older, renamed);
    const doc = await snapshotWhere(t.db.db, (d) => !!pinAt(d, renamed) && d.pins.some((x) => x.reasons.some((r) => r.includes('yet no pin'))));
    const pin = pinAt(doc, renamed)!;
    expect(pin.creator).toBeNull();
    expect(pin.status).toBe('orphaned'); // the safe verdict: who made it is unknown
    expect(pin.reasons).toContainEqual(expect.stringMatching(/while pinleak watch \(pid \d+\) recorded every pin, yet no pin of this object was recorded: renamed or hard-linked from an older pin$/));
  }, 120_000);

  it('stores a burst of 400 pins, or counts the drops', async () => {
    const base = path.join(bpffs, 'burst');
    const runs = await Promise.all([0, 1, 2, 3].map((i) => runPinner({ kind: 'map', path: `${base}-${i}`, count: 100 })));
    const pids = new Set(runs.map((r) => r.pid));
    let stored = 0, drops = 0;
    await eventually(() => {
      stored = readStore(t.db.db, (s) => listPinRecords(s, readBootId(), 1_000_000).filter((r) => pids.has(r.pid)).length) ?? 0;
      drops = readStore(t.db.db, (s) => watchSessions(s, readBootId()).at(-1)!.drops) ?? 0;
      return stored + drops >= 400;
    }, 20_000);
    expect(stored + drops).toBe(400);
    expect(drops).toBe(0);
  }, 60_000);

  it('refuses a second watch on the same database in one line', () => {
    const r = pinleak(['watch', '--scan-every', '1s'], { db: t.db.db, timeout: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`pinleak: another pinleak watch is running on ${t.db.db} (it holds ${t.db.db}.watch-lock)\n`);
  });

  it('--timings: after each scan one line on stderr, every phase, the store, the total and the CPU (the bench reads it)', async () => {
    const db = tempDb();
    try {
      const w = await startWatch(db.db, '1s', ['--timings']);
      const timingLines = () => w.stderr().match(/^timings \(ms\): .*$/gm) ?? [];
      expect(await eventually(() => timingLines().length >= 2, 60_000), w.stderr()).toBe(true);
      for (const line of timingLines()) {
        const t = Object.fromEntries(line.slice('timings (ms): '.length).split(', ').map((part) => {
          const sp = part.lastIndexOf(' ');
          return [part.slice(0, sp), Number(part.slice(sp + 1))];
        }));
        expect(Object.keys(t)).toEqual(expect.arrayContaining(['processes', 'pins', 'classification', 'store', 'total', 'cpu']));
        for (const v of Object.values(t)) expect(v).toBeGreaterThanOrEqual(0);
        expect(t.total).toBeGreaterThanOrEqual(t.pins + t.classification + t.store);
      }
      w.child.kill('SIGTERM');
      expect(await w.exited).toEqual({ code: 0, signal: null });
    } finally {
      db.remove();
    }
  });

  it('where the kernel refuses the recorder (a user namespace: no bpf(2) there) says so in one line, keeps going, ends with 0 on SIGTERM', async () => {
    const db = tempDb();
    // unshare execs node: the child is watch itself
    const child = spawn('unshare', ['--user', '--map-root-user', process.execPath, CLI, '--db', db.db, 'watch', '--scan-every', '1h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += String(d)));
      // its first scan fails there too (a warning): watch stays up
      expect(await eventually(() => stderr.includes('scan failed'), 30_000)).toBe(true);
      expect(child.exitCode).toBeNull();
      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
      const lines = stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^pinleak: the pin recorder cannot run here \(BPF_MAP_CREATE pinleak_pins: EPERM \(operation not permitted\)\): watch only scans$/);
      expect(lines.slice(1)).toEqual([expect.stringMatching(/^pinleak: warning: scan failed: /)]);
      const s = openStore(db.db, { access: 'read' });
      try {
        expect(watchSessions(s, readBootId())).toEqual([expect.objectContaining({ recording: false, note: expect.stringMatching(/EPERM/) })]);
      } finally {
        s.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      db.remove();
    }
  }, 60_000);

  it('leaves no program or link attached when killed with SIGKILL', async () => {
    expect(bpftoolSees(watch.progId, watch.linkId)).toEqual({ prog: true, link: true });
    watch.child.kill('SIGKILL');
    expect((await watch.exited).signal).toBe('SIGKILL');
    const gone = () => {
      const s = bpftoolSees(watch.progId, watch.linkId);
      return !s.prog && !s.link;
    };
    expect(await eventually(gone)).toBe(true);
    // and the lock went with it: a new watch starts, then ends cleanly on SIGTERM
    const next = await startWatch(t.db.db, '1h');
    next.child.kill('SIGTERM');
    expect(await next.exited).toEqual({ code: 0, signal: null });
    expect(await eventually(() => !bpftoolSees(next.progId, next.linkId).prog)).toBe(true);
    const s = openStore(t.db.db, { access: 'read' });
    try {
      const sessions = watchSessions(s, readBootId());
      expect(sessions.at(-2)!.endedAt).toBeNull(); // killed: it could not say when it ended
      expect(sessions.at(-1)!.endedAt).not.toBeNull();
    } finally {
      s.close();
    }
  }, 60_000);
});

describe('pinleak run with the pin recorder', () => {
  const runDb = tempDb();
  afterAll(() => runDb.remove());

  it('attributes exactly the pins of its process tree: a grandchild that lived a few ms, not a pinner outside', async () => {
    const inside = path.join(bpffs, 'run-grandchild');
    const outside = path.join(bpffs, 'run-outside');
    // CMD (sh) -> sh -> node: the grandchild pins after the outside pinner below
    const script = `echo root=$$ >&2; sleep 1; sh -c "'${process.execPath}' '${PINNER_PATH}' map '${inside}'; true"; true`;
    const running = promisify(execFile)(process.execPath, [CLI, '--db', runDb.db, 'run', '--json', '--', 'sh', '-c', script],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } });
    await new Promise((r) => setTimeout(r, 300));
    const other = await runPinner({ kind: 'map', path: outside });
    const { stdout, stderr } = await running;
    const out = JSON.parse(stdout) as RunResult;
    const grandchild = JSON.parse(stderr.split('\n').find((l) => l.startsWith('{"pid"'))!) as Pinned;
    assertDocument(out, 'run');
    expect(out.pinRecords).toBe(1);
    expect(out.created.map((p) => p.mountPaths[0]!.path)).toEqual([inside]);
    expect(out.leftBehind.map((p) => p.mountPaths[0]!.path)).toEqual([inside]);
    expect(out.created[0]!.creator).toMatchObject({ pid: grandchild.pid, startTime: grandchild.startTime, comm: NODE_COMM, alive: false, source: 'watch' });
    expect(other.pid).not.toBe(grandchild.pid);
    // its parent was the middle shell: CMD's root is its grandparent
    const rootPid = Number(/^root=(\d+)$/m.exec(stderr)![1]);
    expect(grandchild.ppid).not.toBe(rootPid);
    expect(out.created[0]!.reasons).toContainEqual(expect.stringMatching(new RegExp(`^pinned by ${grandchild.pid} \\(${NODE_COMM}\\) at `)));
  }, 120_000);

  it('samples instead with --no-record, saying how it attributed', () => {
    const r = pinleak(['run', '--no-record', '--', process.execPath, PINNER_PATH, 'map', path.join(bpffs, 'run-sampled')], { db: runDb.db });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/exited with code 0 \((1 sample|\d+ samples) of its process tree\)/);
  }, 120_000);
});
