import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PinleakError } from '../../src/errors.js';
import type { Pin, SnapshotDoc, Status } from '../../src/model.js';
import {
  DB_SCHEMA_VERSION, earliestHolders, listActions, listSnapshots, loadSnapshot, openStore, pruneSnapshots, recordAction,
  recordCreators, recordedCreators, resolveSnapshot, saveSnapshot, staleRuns, type Store,
} from '../../src/store/index.js';
import { EARLIEST_HOLDERS_SQL } from '../../src/store/history.js';
import { MIGRATIONS, APPLICATION_ID } from '../../src/store/schema.js';

// ---------------------------------------------------------------- fixtures

const BOOT = '6f1c2a4e-0000-4000-8000-000000000001';
const OTHER_BOOT = '6f1c2a4e-0000-4000-8000-000000000002';

const HOST_NS = 4026531832;
const APP_NS = 4026532176;
const TOKEN_NS = 4026532999;

function richDoc(opts: { label?: string | null; takenAt?: string; bootId?: string } = {}): SnapshotDoc {
  const container = { runtime: 'containerd', id: 'abc123', podUid: 'pod-1', cgroup: '/kubepods/pod-1/abc123' };
  const pins: Pin[] = [
    {
      instance: '0:39', path: '/otel/1234/events',
      mountPaths: [{ mntNs: APP_NS, path: '/tmp/nsbpf/otel/1234/events' }, { mntNs: HOST_NS, path: '/sys/fs/bpf/x/otel/1234/events' }],
      inode: 26, createdAt: '2026-11-24T20:27:01.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'map', id: 26, name: 'otel_events', type: 'hash', memlockBytes: 82960 },
      holders: [],
      usedBy: [{ kind: 'prog', id: 110 }],
      status: 'leaked',
      reasons: ['creator 4242 (otel-go-instru) seen in snapshot 5 has exited'],
      owner: { tool: 'otel-go-instrumentation', persistent: false, pathPid: 1234, pathPidAlive: false },
      creator: { pid: 4242, startTime: 81200, comm: 'otel-go-instru', alive: false, firstSeenSnapshot: 5, source: 'history', container },
    },
    {
      // the same object pinned a second time: a second pin, one objects row
      instance: '0:39', path: '/otel/1234/events_alias',
      mountPaths: [{ mntNs: APP_NS, path: '/tmp/nsbpf/otel/1234/events_alias' }],
      inode: 27, createdAt: '2026-11-24T20:27:02.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'map', id: 26, name: 'otel_events', type: 'hash', memlockBytes: 82960 },
      holders: [], usedBy: [], status: 'orphaned', reasons: ['only pinned'],
      owner: { tool: null, persistent: false, pathPid: null, pathPidAlive: null },
      creator: null,
    },
    {
      instance: '0:40', path: '/cilium/prog',
      mountPaths: [{ mntNs: HOST_NS, path: '/sys/fs/bpf/cilium/prog' }],
      inode: 5, createdAt: '2026-11-24T19:00:00.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'prog', id: 110, name: 'cil_from_netdev', type: 'sched_cls', memlockBytes: 4096 },
      holders: [
        { pid: 3733, startTime: 83400, comm: 'cilium-agent', fds: [18, 19], mntNs: HOST_NS, container: null },
        { pid: 3800, startTime: 83500, comm: 'bpftool', fds: [3], mntNs: HOST_NS, container, mmapped: true },
      ],
      usedBy: [],
      status: 'held', reasons: ['held by 3733 (cilium-agent)'],
      owner: { tool: 'cilium', persistent: true, pathPid: null, pathPidAlive: null },
      creator: { pid: 3733, startTime: 83400, comm: 'cilium-agent', alive: true, firstSeenSnapshot: null },
    },
    {
      instance: '0:40', path: '/cilium/map',
      mountPaths: [{ mntNs: HOST_NS, path: '/sys/fs/bpf/cilium/map' }],
      inode: 6, createdAt: '2026-11-24T19:00:00.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'map', id: 77, name: 'cilium_ct', type: 'lru_hash', memlockBytes: 1048576 },
      holders: [{ pid: 3733, startTime: 83400, comm: 'cilium-agent', fds: [21], mntNs: HOST_NS, container: null, mmapped: false }],
      usedBy: [{ kind: 'prog', id: 110 }, { kind: 'link', id: 9 }],
      status: 'held', reasons: ['held by 3733 (cilium-agent)'],
      owner: { tool: 'cilium', persistent: true, pathPid: null, pathPidAlive: null },
      creator: null,
      error: null,
    },
    {
      instance: '0:41', path: '/token/locked',
      mountPaths: [{ mntNs: TOKEN_NS, path: '/run/token/locked' }],
      inode: 3, createdAt: '2026-11-24T20:00:00.000Z', uid: 1000, gid: 1000, mode: '0400',
      object: null, holders: [], usedBy: [], status: 'unreadable', reasons: ['BPF_OBJ_GET: EACCES'],
      owner: { tool: null, persistent: false, pathPid: null, pathPidAlive: null },
      creator: null,
      error: 'EACCES',
    },
    {
      instance: '0:41', path: '/token/link',
      mountPaths: [{ mntNs: TOKEN_NS, path: '/run/token/link' }],
      inode: 4, createdAt: '2026-11-24T20:00:00.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'link', id: 9, name: 'cil_from_netdev', type: 'tcx', memlockBytes: 0 },
      holders: [], usedBy: [], status: 'orphaned', reasons: ['nothing holds it'],
      owner: { tool: null, persistent: false, pathPid: 77, pathPidAlive: true },
      creator: { pid: 9999, startTime: null, comm: null, alive: false, firstSeenSnapshot: null, source: 'path' },
    },
  ];
  const byStatus = { held: 0, 'in-use': 0, orphaned: 0, leaked: 0, persistent: 0, unreadable: 0 } as Record<Status, number>;
  for (const p of pins) byStatus[p.status]++;
  return {
    schemaVersion: 1,
    snapshot: {
      id: null, takenAt: opts.takenAt ?? '2026-11-24T20:30:00.000Z', bootId: opts.bootId ?? BOOT, hostname: 'node-1',
      kernel: '6.18.44', label: opts.label === undefined ? null : opts.label, durationMs: 41,
    },
    namespaces: [
      { mntNs: HOST_NS, reachedVia: 'process', pids: [1, 3733], processCount: 412, nsfsPaths: [], error: null },
      { mntNs: APP_NS, reachedVia: 'nsfs', pids: [], processCount: 0, nsfsPaths: ['/run/netns/app'], error: null, container },
      { mntNs: TOKEN_NS, reachedVia: 'fd', pids: [2353], processCount: 1, nsfsPaths: [], error: 'mountinfo: ESRCH', container: null },
    ],
    instances: [
      {
        dev: '0:39',
        mounts: [
          { mntNs: APP_NS, mountId: 68, mountPoint: '/tmp/nsbpf', root: '/', superOptions: 'rw' },
          { mntNs: HOST_NS, mountId: 301, mountPoint: '/sys/fs/bpf/x', root: '/', superOptions: 'rw' },
        ],
        delegation: null, pinCount: 2, memlockBytes: 82960, error: null,
      },
      {
        dev: '0:40',
        mounts: [{ mntNs: HOST_NS, mountId: 30, mountPoint: '/sys/fs/bpf', root: '/', superOptions: 'rw,mode=700' }],
        delegation: null, pinCount: 2, memlockBytes: 1052672, error: null,
      },
      {
        dev: '0:41',
        mounts: [
          { mntNs: TOKEN_NS, mountId: 900, mountPoint: '/run/token', root: '/', superOptions: 'rw,delegate_cmds=map_create' },
          { mntNs: TOKEN_NS, mountId: 901, mountPoint: '/run/token2', root: '/sub', superOptions: 'rw,delegate_cmds=map_create' },
        ],
        delegation: { cmds: 'map_create:prog_load', maps: 'any', progs: null, attachs: 'any' },
        pinCount: 2, memlockBytes: 0, error: 'walk: partial',
      },
    ],
    pins,
    summary: {
      namespaces: 3, instances: 3, pins: pins.length, byStatus,
      memlockBytes: { total: 1136128, orphaned: 0, leaked: 82960 },
    },
    errors: [{ scope: 'namespace 4026532999', message: 'mountinfo: ESRCH' }],
  };
}

/** A large, plain document: `pins` pins on `pins` distinct objects, `holders` of them held. */
function bigDoc(pins: number, holders: number, opts: { bootId?: string; takenAt?: string } = {}): SnapshotDoc {
  const list: Pin[] = [];
  for (let i = 0; i < pins; i++) {
    const held = i < holders;
    list.push({
      instance: `0:${40 + (i % 50)}`, path: `/app/${i % 100}/map_${i}`,
      mountPaths: [{ mntNs: 4026531832, path: `/sys/fs/bpf/app/${i % 100}/map_${i}` }],
      inode: 1000 + i, createdAt: '2026-11-24T20:00:00.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'map', id: 10_000 + i, name: `map_${i}`, type: 'hash', memlockBytes: 4096 + i },
      holders: held ? [{ pid: 2000 + (i % 1000), startTime: 5000 + (i % 1000), comm: `proc${i % 1000}`, fds: [3 + (i % 50)], mntNs: 4026531832, container: null }] : [],
      usedBy: [],
      status: held ? 'held' : i % 3 === 0 ? 'orphaned' : i % 3 === 1 ? 'leaked' : 'persistent',
      reasons: [held ? 'held' : 'nothing holds it'],
      owner: { tool: null, persistent: false, pathPid: null, pathPidAlive: null },
      creator: null,
    });
  }
  return {
    schemaVersion: 1,
    snapshot: { id: null, takenAt: opts.takenAt ?? '2026-11-24T20:30:00.000Z', bootId: opts.bootId ?? BOOT, hostname: 'big', kernel: '6.18.44', label: null, durationMs: 1500 },
    namespaces: [{ mntNs: 4026531832, reachedVia: 'process', pids: [1], processCount: 1000, nsfsPaths: [], error: null }],
    instances: Array.from({ length: 50 }, (_, i) => ({
      dev: `0:${40 + i}`, mounts: [{ mntNs: 4026531832, mountId: 100 + i, mountPoint: `/sys/fs/bpf/i${i}`, root: '/', superOptions: 'rw' }],
      delegation: null, pinCount: pins / 50, memlockBytes: 0, error: null,
    })),
    pins: list,
    summary: { namespaces: 1, instances: 50, pins, byStatus: { held: holders, 'in-use': 0, orphaned: 0, leaked: 0, persistent: 0, unreadable: 0 }, memlockBytes: { total: 0, orphaned: 0, leaked: 0 } },
    errors: [],
  };
}

// ---------------------------------------------------------------- tests

let dir: string;
const stores: Store[] = [];
function open(p = path.join(dir, 'pinleak.db'), o?: { create?: boolean }): Store {
  const s = openStore(p, o);
  stores.push(s);
  return s;
}
const sha256 = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
function expectPinleakError(fn: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PinleakError);
  expect((err as Error).message).toMatch(pattern);
  expect((err as Error).message).not.toContain('\n');
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-store-'));
});
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('openStore', () => {
  it('creates the directory 0700, the file 0600, WAL, incremental auto_vacuum, foreign keys, busy timeout', () => {
    const p = path.join(dir, 'a', 'b', 'pinleak.db');
    const s = open(p);
    expect(fs.statSync(path.join(dir, 'a')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('auto_vacuum', { simple: true })).toBe(2);
    expect(s.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(s.db.pragma('busy_timeout', { simple: true })).toBeGreaterThanOrEqual(5000);
    expect(s.db.pragma('user_version', { simple: true })).toBe(DB_SCHEMA_VERSION);
    const tables = (s.db.prepare(`SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const t of ['snapshots', 'namespaces', 'instances', 'mounts', 'pins', 'objects', 'holders', 'processes', 'actions', 'creators']) {
      expect(tables).toContain(t);
    }
  });

  it('reopens an existing database without migrating again', () => {
    const p = path.join(dir, 'pinleak.db');
    const s = open(p);
    saveSnapshot(s, richDoc());
    s.close();
    const s2 = open(p, { create: false });
    expect(listSnapshots(s2)).toHaveLength(1);
  });

  it('create:false on a missing file says to scan first', () => {
    const p = path.join(dir, 'missing.db');
    expectPinleakError(() => open(p, { create: false }), /^no database at .*missing\.db: run `pinleak scan` first, or pass --db PATH$/);
    expect(fs.existsSync(p)).toBe(false);
  });

  it('treats a 0-byte file as a new database', () => {
    const p = path.join(dir, 'empty.db');
    fs.writeFileSync(p, '');
    const s = open(p);
    expect(s.db.pragma('auto_vacuum', { simple: true })).toBe(2);
    saveSnapshot(s, richDoc());
    expect(listSnapshots(s)).toHaveLength(1);
  });

  it('refuses a file of random bytes and leaves it byte-for-byte untouched', () => {
    const p = path.join(dir, 'junk.db');
    fs.writeFileSync(p, crypto.randomBytes(64 * 1024));
    const before = sha256(p);
    expectPinleakError(() => open(p), /junk\.db is not a pinleak database \(file is not a database\); move it aside or pass --db PATH/);
    expect(sha256(p)).toBe(before);
    expect(fs.readdirSync(dir)).toEqual(['junk.db']);
  });

  it('refuses a SQLite file with a valid header but corrupt pages, untouched', () => {
    const p = path.join(dir, 'corrupt.db');
    const s = open(p);
    for (let i = 0; i < 5; i++) saveSnapshot(s, bigDoc(300, 30));
    s.close();
    const buf = fs.readFileSync(p);
    // keep page 1 (header and schema) and scribble over everything after it
    crypto.randomFillSync(buf, 4096, buf.length - 4096);
    fs.writeFileSync(p, buf);
    const before = sha256(p);
    expectPinleakError(() => open(p), /corrupt\.db is (corrupt|not a pinleak database).*; move it aside or pass --db PATH/);
    expect(sha256(p)).toBe(before);
  });

  it('refuses a database of a newer schema and leaves it untouched', () => {
    const p = path.join(dir, 'newer.db');
    const s = open(p);
    saveSnapshot(s, richDoc());
    s.db.pragma('user_version = 9');
    s.close();
    const before = sha256(p);
    const files = fs.readdirSync(dir).sort();
    expectPinleakError(() => open(p), new RegExp(`newer\\.db was written by a newer pinleak \\(schema 9, this one knows ${DB_SCHEMA_VERSION}\\); upgrade pinleak or pass --db PATH`));
    expect(sha256(p)).toBe(before);
    expect(fs.readdirSync(dir).sort()).toEqual(files);
  });

  it('refuses another program’s SQLite database, untouched', () => {
    const p = path.join(dir, 'other.db');
    const db = new Database(p);
    db.exec('CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT); INSERT INTO moz_places (url) VALUES (\'x\')');
    db.close();
    const before = sha256(p);
    expectPinleakError(() => open(p), /other\.db is not a pinleak database \(it holds other tables: moz_places\)/);
    expect(sha256(p)).toBe(before);
  });

  it('names a directory given as the database', () => {
    expectPinleakError(() => open(dir), /is a directory/);
  });
});

describe('snapshots', () => {
  it('round-trips a rich document exactly', () => {
    const s = open();
    const doc = richDoc({ label: 'before' });
    const original = structuredClone(doc);
    const id = saveSnapshot(s, doc);
    expect(id).toBeGreaterThan(0);
    expect(doc.snapshot.id).toBe(id);
    const loaded = loadSnapshot(s, id);
    expect(loaded).toStrictEqual({ ...original, snapshot: { ...original.snapshot, id } });
    // key order follows the model, so JSON output reads the same
    expect(JSON.stringify(loaded)).toBe(JSON.stringify({ ...original, snapshot: { ...original.snapshot, id } }));
    // the same object pinned twice is one objects row; a shared process is one processes row
    expect(s.db.prepare('SELECT count(*) AS n FROM objects WHERE snapshot_id = ?').get(id)).toEqual({ n: 4 });
    expect(s.db.prepare('SELECT count(*) AS n FROM processes WHERE snapshot_id = ?').get(id)).toEqual({ n: 2 });
  });

  it('keeps fields it has no column for', () => {
    const s = open();
    const doc = richDoc() as unknown as Record<string, any>;
    doc.futureTop = { a: 1 };
    doc.snapshot.futureMeta = 'm';
    doc.namespaces[0].futureNs = [1];
    doc.instances[0].futureInst = true;
    doc.instances[0].mounts[0].futureMount = 'x';
    doc.pins[0].futurePin = 'p';
    doc.pins[0].object.futureObj = 3;
    doc.pins[0].owner.futureOwner = 'o';
    doc.pins[0].creator.futureCreator = 'c';
    doc.pins[2].holders[0].futureHolder = 'h';
    doc.errors[0].futureErr = 0;
    const original = structuredClone(doc);
    const id = saveSnapshot(s, doc as unknown as SnapshotDoc);
    expect(loadSnapshot(s, id)).toStrictEqual({ ...original, snapshot: { ...original.snapshot, id } });
  });

  it('loadSnapshot of an unknown id is a PinleakError', () => {
    const s = open();
    expectPinleakError(() => loadSnapshot(s, 42), /^unknown snapshot "42": run `pinleak snapshots` to list them$/);
  });

  it('lists snapshots oldest first with pin, leak and leaked-byte counts', () => {
    const s = open();
    saveSnapshot(s, richDoc({ label: 'a' }));
    const empty = richDoc({ label: 'b', takenAt: '2026-11-24T20:35:00.000Z' });
    empty.pins = [];
    empty.summary = { ...empty.summary, pins: 0, memlockBytes: { total: 0, orphaned: 0, leaked: 0 } };
    saveSnapshot(s, empty);
    const list = listSnapshots(s);
    expect(list.map((e) => e.label)).toEqual(['a', 'b']);
    // leaks: orphaned+leaked pins: events (leaked), events_alias (orphaned), token/link (orphaned);
    // leakedBytes: docs/json.md, the summary's memlockBytes.leaked
    expect(list[0]).toMatchObject({ id: 1, pins: 6, leaks: 3, leakedBytes: 82960, takenAt: '2026-11-24T20:30:00.000Z', bootId: BOOT, hostname: 'node-1', kernel: '6.18.44', durationMs: 41 });
    expect(list[1]).toMatchObject({ id: 2, pins: 0, leaks: 0, leakedBytes: 0 });
  });

  it('resolves ids, labels, latest and latest~N', () => {
    const s = open();
    const a = saveSnapshot(s, richDoc({ label: 'deploy' }));
    const b = saveSnapshot(s, richDoc({ label: 'deploy' }));
    const c = saveSnapshot(s, richDoc({ label: 'after' }));
    const d = saveSnapshot(s, richDoc({ label: '1000' }));
    expect(resolveSnapshot(s, String(a))).toBe(a);
    expect(resolveSnapshot(s, 'deploy')).toBe(b);
    expect(resolveSnapshot(s, 'after')).toBe(c);
    expect(resolveSnapshot(s, '1000')).toBe(d); // no snapshot 1000: tried as a label
    expect(resolveSnapshot(s, 'latest')).toBe(d);
    expect(resolveSnapshot(s, 'latest~0')).toBe(d);
    expect(resolveSnapshot(s, 'latest~1')).toBe(c);
    expect(resolveSnapshot(s, 'latest~3')).toBe(a);
    expectPinleakError(() => resolveSnapshot(s, 'latest~4'), /^unknown snapshot "latest~4": run `pinleak snapshots` to list them$/);
    expectPinleakError(() => resolveSnapshot(s, 'nope'), /^unknown snapshot "nope": run `pinleak snapshots` to list them$/);
    expectPinleakError(() => resolveSnapshot(s, '99'), /^unknown snapshot "99"/);
  });

  it('latest on an empty database is an unknown snapshot', () => {
    const s = open();
    expectPinleakError(() => resolveSnapshot(s, 'latest'), /^unknown snapshot "latest"/);
  });

  it('two handles on one database write alternately', () => {
    const p = path.join(dir, 'shared.db');
    const s1 = open(p);
    const s2 = open(p);
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push(saveSnapshot(i % 2 ? s2 : s1, richDoc({ label: `n${i}` })));
    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listSnapshots(s1).map((e) => e.label)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
    expect(loadSnapshot(s2, 5).pins).toHaveLength(6);
    // a reader in the middle of a read does not block the other handle's write
    const it = s1.db.prepare('SELECT id FROM snapshots').iterate();
    it.next();
    expect(saveSnapshot(s2, richDoc())).toBe(7);
    it.return?.();
  });
});

describe('errors from SQLite', () => {
  it('a write lock held too long is a PinleakError, not a crash', () => {
    const p = path.join(dir, 'locked.db');
    const s = open(p);
    s.db.pragma('busy_timeout = 50');
    const other = new Database(p);
    other.exec('BEGIN IMMEDIATE');
    try {
      expectPinleakError(() => saveSnapshot(s, richDoc()), /locked\.db is locked by another process/);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(saveSnapshot(s, richDoc())).toBe(1);
  });
});

describe('history', () => {
  const sighting = (pid: number, startTime: number, comm: string, snapshotId: number) =>
    expect.objectContaining({ pid, startTime, comm, snapshotId });

  it('earliestHolders gives each (pid, startTime) with its first snapshot, in this boot only', () => {
    const s = open();
    const d1 = richDoc({ takenAt: '2026-11-24T20:00:00.000Z' });
    d1.pins[0].holders = [{ pid: 4242, startTime: 81200, comm: 'otel-go-instru', fds: [7], mntNs: 1, container: null }];
    const id1 = saveSnapshot(s, d1);
    const d2 = richDoc({ takenAt: '2026-11-24T20:05:00.000Z' });
    d2.pins[0].holders = [
      { pid: 4242, startTime: 81200, comm: 'renamed', fds: [7], mntNs: 1, container: null },
      { pid: 4242, startTime: 90000, comm: 'reused-pid', fds: [3], mntNs: 1, container: null },
    ];
    const id2 = saveSnapshot(s, d2);
    const other = richDoc({ bootId: OTHER_BOOT });
    other.pins[0].holders = [{ pid: 1, startTime: 1, comm: 'other-boot', fds: [1], mntNs: 1, container: null }];
    saveSnapshot(s, other);

    const m = earliestHolders(s, BOOT, [{ kind: 'map', id: 26 }, { kind: 'prog', id: 110 }, { kind: 'map', id: 999 }, { kind: 'map', id: 26 }]);
    expect(m.get('map:26')).toEqual([sighting(4242, 81200, 'otel-go-instru', id1), sighting(4242, 90000, 'reused-pid', id2)]);
    expect(m.get('map:26')![0]).toEqual({ pid: 4242, startTime: 81200, comm: 'otel-go-instru', snapshotId: id1, container: null });
    // prog 110 held by cilium-agent and bpftool since the first snapshot
    expect(m.get('prog:110')).toEqual([sighting(3733, 83400, 'cilium-agent', id1), sighting(3800, 83500, 'bpftool', id1)]);
    expect(m.get('prog:110')![1]!.container).toEqual({ runtime: 'containerd', id: 'abc123', podUid: 'pod-1', cgroup: '/kubepods/pod-1/abc123' });
    expect(m.get('map:999')).toEqual([]);
    expect(earliestHolders(s, OTHER_BOOT, [{ kind: 'map', id: 26 }]).get('map:26')).toEqual([sighting(1, 1, 'other-boot', 3)]);
    expect(earliestHolders(s, 'no-such-boot', [{ kind: 'map', id: 26 }]).get('map:26')).toEqual([]);
  });

  it('earliestHolders keeps a first sighting when its snapshot is pruned, while its object is still pinned', () => {
    const s = open();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const d = richDoc({ takenAt: `2026-11-24T20:0${i}:00.000Z` });
      d.pins[0].holders = i === 0 ? [] : [{ pid: 50, startTime: 5, comm: `c${i}`, fds: [3], mntNs: 1, container: null }];
      ids.push(saveSnapshot(s, d));
    }
    expect(earliestHolders(s, BOOT, [{ kind: 'map', id: 26 }]).get('map:26')).toEqual([sighting(50, 5, 'c1', ids[1]!)]);
    expect(pruneSnapshots(s, { keep: 1 }).removed).toBe(2);
    // the evidence of who held it outlives retention: a leak seen held stays attributable
    const kept = earliestHolders(s, BOOT, [{ kind: 'map', id: 26 }]).get('map:26')!;
    expect(kept).toEqual([sighting(50, 5, 'c1', ids[1]!)]);
    expect(listSnapshots(s).map((x) => x.id)).not.toContain(ids[1]); // its first snapshot is gone
    // an object gone from every remaining snapshot takes its sightings with it
    const d = richDoc({ takenAt: '2026-11-24T20:09:00.000Z' });
    d.pins = d.pins.filter((p) => p.object?.id !== 26);
    saveSnapshot(s, d);
    expect(pruneSnapshots(s, { keep: 1 }).removed).toBe(1);
    expect(earliestHolders(s, BOOT, [{ kind: 'map', id: 26 }]).get('map:26')).toEqual([]);
  });

  it('records creators from run, first record wins, per boot', () => {
    const s = open();
    const sid = saveSnapshot(s, richDoc());
    const container = { runtime: 'docker', id: 'f00', podUid: null, cgroup: '/docker/f00' };
    recordCreators(s, BOOT, [
      { kind: 'map', id: 26, pid: 4242, startTime: 81200, comm: 'otel', container, source: 'run', snapshotId: sid },
      { kind: 'prog', id: 110, pid: 4243, startTime: 81201, comm: 'loader', container: null, source: 'run', snapshotId: null },
    ]);
    recordCreators(s, BOOT, [{ kind: 'map', id: 26, pid: 1, startTime: 1, comm: 'late', container: null, source: 'run', snapshotId: null }]);
    const m = recordedCreators(s, BOOT, [{ kind: 'map', id: 26 }, { kind: 'prog', id: 110 }, { kind: 'map', id: 5 }]);
    expect(m.get('map:26')).toEqual({ kind: 'map', id: 26, pid: 4242, startTime: 81200, comm: 'otel', container, source: 'run', snapshotId: sid });
    expect(m.get('prog:110')).toEqual({ kind: 'prog', id: 110, pid: 4243, startTime: 81201, comm: 'loader', container: null, source: 'run', snapshotId: null });
    expect(m.has('map:5')).toBe(false);
    expect(recordedCreators(s, OTHER_BOOT, [{ kind: 'map', id: 26 }]).size).toBe(0);
  });
});

describe('stale runs (issue 14)', () => {
  /** richDoc with its cilium map (map 77) unused and stale as the classifier says */
  function staleDoc(takenAt: string, stale: { since: string; sinceSnapshot: number | null } | null, bootId = BOOT): SnapshotDoc {
    const d = richDoc({ takenAt, bootId });
    const p = d.pins[3]!;
    p.holders = [];
    p.status = stale ? 'persistent' : 'in-use';
    p.stale = stale;
    return d;
  }
  const MAP = [{ kind: 'map' as const, id: 77 }];

  it('a run starts at the snapshot that first stores it, continues, and ends when a stored scan finds the object used', () => {
    const s = open();
    const t1 = '2026-11-24T20:00:00.000Z';
    const d1 = staleDoc(t1, { since: t1, sinceSnapshot: null });
    const id1 = saveSnapshot(s, d1);
    expect(d1.pins[3]!.stale).toEqual({ since: t1, sinceSnapshot: id1 }); // filled in, and stored so
    expect(loadSnapshot(s, id1).pins[3]!.stale).toEqual({ since: t1, sinceSnapshot: id1 });
    expect(staleRuns(s, BOOT, MAP).get('map:77')).toEqual({ since: t1, snapshotId: id1 });
    // the next scan carries the run (the classifier read it): the row keeps its start
    saveSnapshot(s, staleDoc('2026-11-24T21:00:00.000Z', { since: t1, sinceSnapshot: id1 }));
    expect(staleRuns(s, BOOT, MAP).get('map:77')).toEqual({ since: t1, snapshotId: id1 });
    expect(staleRuns(s, OTHER_BOOT, MAP).size).toBe(0);
    // used again: the run ends
    const id3 = saveSnapshot(s, staleDoc('2026-11-24T22:00:00.000Z', null));
    expect(staleRuns(s, BOOT, MAP).size).toBe(0);
    expect(loadSnapshot(s, id3).pins[3]!.stale).toBeNull();
    // one index lookup, however many objects are asked for
    const plan = s.db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM json_each(?) AS j CROSS JOIN stale_runs AS r
      ON r.boot_id = ? AND r.kind = json_extract(j.value, '$[0]') AND r.obj_id = json_extract(j.value, '$[1]')`).all('[]', BOOT) as { detail: string }[];
    expect(plan.map((r) => r.detail).join('\n')).toMatch(/SEARCH r USING PRIMARY KEY/);
  });

  it('an object with one stale pin and another pin that is not stale is still stale', () => {
    const s = open();
    const t1 = '2026-11-24T20:00:00.000Z';
    const d = staleDoc(t1, { since: t1, sinceSnapshot: null });
    d.pins.push({ ...structuredClone(d.pins[3]!), path: '/elsewhere', status: 'orphaned', stale: null });
    const id = saveSnapshot(s, d);
    expect(staleRuns(s, BOOT, MAP).get('map:77')).toEqual({ since: t1, snapshotId: id });
  });

  it('prune keeps a run while its object is in a remaining snapshot, with the pruned snapshot id', () => {
    const s = open();
    const t1 = '2026-11-24T20:00:00.000Z';
    const id1 = saveSnapshot(s, staleDoc(t1, { since: t1, sinceSnapshot: null }));
    saveSnapshot(s, staleDoc('2026-11-24T21:00:00.000Z', { since: t1, sinceSnapshot: id1 }));
    pruneSnapshots(s, { keep: 1 });
    expect(staleRuns(s, BOOT, MAP).get('map:77')).toEqual({ since: t1, snapshotId: id1 });
    const later = richDoc({ takenAt: '2026-11-24T23:00:00.000Z' });
    later.pins = later.pins.slice(0, 3); // map 77 unpinned
    saveSnapshot(s, later);
    pruneSnapshots(s, { keep: 1 });
    expect(staleRuns(s, BOOT, MAP).size).toBe(0);
  });

  it('a version 1 database is migrated: its pins load without the field, new ones store it', () => {
    const p = path.join(dir, 'v1.db');
    const raw = new Database(p);
    raw.pragma('journal_mode = WAL');
    raw.pragma('auto_vacuum = INCREMENTAL');
    MIGRATIONS[0]!(raw);
    raw.pragma('user_version = 1');
    expect(raw.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    raw.close();
    const s = open(p);
    expect(s.db.pragma('user_version', { simple: true })).toBe(DB_SCHEMA_VERSION);
    const t1 = '2026-11-24T20:00:00.000Z';
    const id = saveSnapshot(s, staleDoc(t1, { since: t1, sinceSnapshot: null }));
    expect(loadSnapshot(s, id).pins[3]!.stale).toEqual({ since: t1, sinceSnapshot: id });
    expect('stale' in loadSnapshot(s, id).pins[0]!).toBe(false);
  });
});

describe('actions', () => {
  it('records and lists clean’s unpins', () => {
    const s = open();
    const a = { at: '2026-11-24T21:00:00.000Z', action: 'unpin' as const, instance: '0:39', path: '/otel/1234/events', objectKind: 'map', objectId: 26, bytes: 82960, actor: 'root', snapshotId: 3 };
    recordAction(s, a);
    recordAction(s, { ...a, path: '/gone', objectId: null, bytes: 0, snapshotId: null });
    expect(listActions(s)).toEqual([{ id: 1, ...a }, { id: 2, ...a, path: '/gone', objectId: null, bytes: 0, snapshotId: null }]);
  });
});

describe('pruneSnapshots', () => {
  it('drops old snapshots, never the latest, and shrinks the file', () => {
    const p = path.join(dir, 'prune.db');
    const s = open(p);
    for (let i = 0; i < 20; i++) saveSnapshot(s, bigDoc(500, 50, { takenAt: new Date(Date.UTC(2026, 10, 1 + i)).toISOString() }));
    s.db.pragma('wal_checkpoint(TRUNCATE)');
    const before = fs.statSync(p).size;
    const { removed } = pruneSnapshots(s, { keep: 2 });
    expect(removed).toBe(18);
    const after = fs.statSync(p).size;
    console.log(`prune: ${before} -> ${after} bytes`);
    expect(after).toBeLessThan(before / 4);
    expect(listSnapshots(s).map((e) => e.id)).toEqual([19, 20]);
    expect(loadSnapshot(s, 20).pins).toHaveLength(500);
    // every row of the dropped snapshots is gone
    for (const t of ['namespaces', 'instances', 'objects', 'pins', 'processes', 'scan_errors']) {
      expect(s.db.prepare(`SELECT count(*) AS n FROM ${t} WHERE snapshot_id < 19`).get()).toEqual({ n: 0 });
    }
    expect(s.db.prepare('SELECT count(*) AS n FROM holders h LEFT JOIN pins p ON p.id = h.pin_id WHERE p.id IS NULL').get()).toEqual({ n: 0 });
    expect(s.db.prepare('SELECT count(*) AS n FROM mounts m LEFT JOIN instances i ON i.id = m.instance_id WHERE i.id IS NULL').get()).toEqual({ n: 0 });
    expect(s.db.pragma('foreign_key_check')).toEqual([]);
  });

  it('by age, keeping the latest even when it is old', () => {
    const s = open();
    for (let i = 0; i < 5; i++) saveSnapshot(s, richDoc({ takenAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString() }));
    const now = new Date(Date.UTC(2026, 0, 5, 12));
    expect(pruneSnapshots(s, { olderThanMs: 2 * 86400_000, now }).removed).toBe(3); // Jan 1, 2 and 3 00:00 are before Jan 3 12:00
    expect(listSnapshots(s).map((e) => e.id)).toEqual([4, 5]);
    expect(pruneSnapshots(s, { olderThanMs: 0, now: new Date(Date.UTC(2030, 0, 1)) }).removed).toBe(1);
    expect(listSnapshots(s).map((e) => e.id)).toEqual([5]);
    expect(pruneSnapshots(s, { keep: 0 }).removed).toBe(0);
    expect(listSnapshots(s).map((e) => e.id)).toEqual([5]);
    // ids are never reused after a prune
    expect(saveSnapshot(s, richDoc())).toBe(6);
  });

  it('with keep and older-than, either one drops a snapshot', () => {
    const s = open();
    for (let i = 0; i < 6; i++) saveSnapshot(s, richDoc({ takenAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString() }));
    const now = new Date(Date.UTC(2026, 0, 6, 12));
    expect(pruneSnapshots(s, { keep: 4, olderThanMs: 4 * 86400_000, now }).removed).toBe(2);
    expect(listSnapshots(s).map((e) => e.id)).toEqual([3, 4, 5, 6]);
    expect(pruneSnapshots(s, { keep: 4, olderThanMs: 2 * 86400_000, now }).removed).toBe(2);
    expect(listSnapshots(s).map((e) => e.id)).toEqual([5, 6]);
  });

  it('rejects a bad keep', () => {
    const s = open();
    expectPinleakError(() => pruneSnapshots(s, { keep: -1 }), /--keep/);
  });
});

describe('performance', () => {
  it('a save that fails on its 5,000th pin leaves no row of it in any table', () => {
    const s = open();
    saveSnapshot(s, richDoc());
    const tables = (s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((t) => t.name);
    const rows = () => Object.fromEntries(tables.map((t) => [t, (s.db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n]));
    const before = rows();
    const doc = bigDoc(10_000, 1_000);
    (doc.pins[4_999] as { path: string | null }).path = null; // pins.path is NOT NULL: the 5,000th insert fails
    expect(() => saveSnapshot(s, doc)).toThrow(/NOT NULL constraint failed: pins.path/);
    expect(rows()).toEqual(before);
    expect(listSnapshots(s)).toHaveLength(1);
    // and the store still takes the next save
    doc.pins[4_999]!.path = '/app/99/map_4999';
    expect(saveSnapshot(s, doc)).toBe(2);
    expect(loadSnapshot(s, 2).pins).toHaveLength(10_000);
  });

  it('stores 10,000 pins, 10,000 objects and 1,000 holders in one transaction (prints the time)', () => {
    const s = open();
    saveSnapshot(s, bigDoc(10_000, 1_000)); // warm up the statements and the JIT
    const saves: number[] = [];
    let id = 0;
    let doc = bigDoc(10_000, 1_000);
    for (let i = 0; i < 3; i++) {
      doc = bigDoc(10_000, 1_000);
      const t0 = performance.now();
      id = saveSnapshot(s, doc);
      saves.push(performance.now() - t0);
    }
    const tSave = Math.min(...saves);
    const t1 = performance.now();
    const loaded = loadSnapshot(s, id);
    const tLoad = performance.now() - t1;
    const objects = doc.pins.map((p) => ({ kind: p.object!.kind, id: p.object!.id }));
    const t2 = performance.now();
    const hist = earliestHolders(s, BOOT, objects);
    const tHist = performance.now() - t2;
    const t3 = performance.now();
    listSnapshots(s);
    const tList = performance.now() - t3;
    console.log(`saveSnapshot 10k pins: ${saves.map((t) => t.toFixed(1)).join(' / ')} ms (best ${tSave.toFixed(1)}); loadSnapshot: ${tLoad.toFixed(1)} ms; earliestHolders 10k objects: ${tHist.toFixed(1)} ms; listSnapshots: ${tList.toFixed(1)} ms`);
    expect(loaded.pins).toHaveLength(10_000);
    expect(loaded.pins[999]!.holders).toHaveLength(1);
    expect(hist.size).toBe(10_000);
    expect([...hist.values()].filter((l) => l.length > 0)).toHaveLength(1_000);
    // the statement earliestHolders runs, not a copy of it
    const plan = (s.db.prepare(`EXPLAIN QUERY PLAN ${EARLIEST_HOLDERS_SQL}`).all('[]', BOOT) as { detail: string }[])
      .map((r) => r.detail).join('\n');
    expect(plan).toMatch(/SEARCH t USING PRIMARY KEY/);
    // fewer objects asked than rows of the boot: that join answers, the same as the full read
    const few = objects.slice(995, 1005);
    const joined = earliestHolders(s, BOOT, few);
    expect([...joined]).toEqual(few.map((o) => [`${o.kind}:${o.id}`, hist.get(`${o.kind}:${o.id}`)]));
    expect([...joined.values()].filter((l) => l.length > 0)).toHaveLength(5);
  });
});
