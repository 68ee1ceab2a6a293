// Pin records and watch sessions in the store (migration 4), and run's tree attribution.
import { describe, expect, it } from 'vitest';
import {
  savePinRecords, pinRecordsOf, listPinRecords, prunePinRecords, openWatchSession, coverWatchSession,
  endWatchSession, watchSessions, type StoredPinRecord,
} from '../../src/store/index.js';
import { pinsOfTree } from '../../src/cli/run.js';
import type { PinRecord } from '../../src/kernel/recorder.js';
import { storeForEachTest } from './fixtures.js';

const BOOT = '6f1c2a4e-0000-4000-8000-000000000001';
const OTHER_BOOT = '6f1c2a4e-0000-4000-8000-000000000002';

function record(over: Partial<StoredPinRecord> = {}): StoredPinRecord {
  return {
    at: '2026-11-24T10:00:00.000Z', kind: 'map', id: 26, ret: 0, pid: 4242, startTime: 81200, comm: 'loader', ppid: 1, parentStartTime: 5,
    cgroupId: 2n ** 63n + 5n, cgroupPath: '/system.slice/docker-x.scope', container: { runtime: 'docker', id: 'x', podUid: null, cgroup: '/x' },
    mntNs: 4026532176, path: 'rel/name', pathTruncated: false, bpfFd: 3, fileFlags: 1 << 14, pathFd: 5, sessionId: null, ...over,
  };
}

const fresh = storeForEachTest('pinleak-unit-');

describe('pin records', () => {
  it('round-trip every field, 64-bit cgroup ids included, and join by boot, kind and id (successful pins only)', () => {
    const ok = record();
    savePinRecords(fresh.store, BOOT, [
      ok,
      record({ at: '2026-11-24T10:00:01.000Z', ret: -17 }),
      record({ at: '2026-11-24T10:00:02.000Z', pid: 7, kind: 'prog' }),
    ]);
    savePinRecords(fresh.store, OTHER_BOOT, [record({ pid: 9 })]);
    const byObject = pinRecordsOf(fresh.store, BOOT, [{ kind: 'map', id: 26 }, { kind: 'map', id: 26 }, { kind: 'link', id: 1 }]);
    expect([...byObject.keys()]).toEqual(['map:26']);
    expect(byObject.get('map:26')).toEqual([ok]);
    expect(listPinRecords(fresh.store, BOOT).map((r) => [r.kind, r.ret])).toEqual([['map', 0], ['map', -17], ['prog', 0]]);
  });

  it('go by age', () => {
    savePinRecords(fresh.store, BOOT, [record({ at: '2026-10-01T00:00:00.000Z' }), record()]);
    expect(prunePinRecords(fresh.store, '2026-11-01T00:00:00.000Z')).toBe(1);
    expect(listPinRecords(fresh.store, BOOT)).toHaveLength(1);
  });
});

describe('watch sessions', () => {
  it('open recording or not, move their coverage, end', () => {
    const id = openWatchSession(fresh.store, BOOT, { pid: 10, startTime: 99, startedAt: '2026-11-24T09:00:00.000Z', recording: true, note: null });
    openWatchSession(fresh.store, BOOT, { pid: 11, startTime: 98, startedAt: '2026-11-24T09:30:00.000Z', recording: false, note: 'BTF: missing' });
    coverWatchSession(fresh.store, id, '2026-11-24T09:05:00.000Z', 3);
    endWatchSession(fresh.store, id, '2026-11-24T09:06:00.000Z');
    expect(watchSessions(fresh.store, BOOT)).toEqual([
      { id, pid: 10, startTime: 99, startedAt: '2026-11-24T09:00:00.000Z', coveredUntil: '2026-11-24T09:05:00.000Z', endedAt: '2026-11-24T09:06:00.000Z', recording: true, note: null, drops: 3 },
      expect.objectContaining({ pid: 11, recording: false, note: 'BTF: missing', coveredUntil: '2026-11-24T09:30:00.000Z', endedAt: null }),
    ]);
    expect(watchSessions(fresh.store, OTHER_BOOT)).toEqual([]);
  });
});

describe('run: the pins of a process tree', () => {
  const raw = (pid: number, ancestors: number[]) => ({ pid, ancestors: [...ancestors, ...Array(16 - ancestors.length).fill(0)] }) as PinRecord;
  const at = (ms: number) => new Date(Date.parse('2026-11-24T10:00:00.000Z') + ms).toISOString();
  it('the root, and processes that have it among their ancestors, within its lifetime', () => {
    const start = Date.parse('2026-11-24T10:00:00.000Z');
    const rs = [
      { raw: raw(500, [1]), stored: record({ at: at(10) }) }, // the root itself
      { raw: raw(502, [501, 500, 1]), stored: record({ at: at(20) }) }, // a grandchild
      { raw: raw(600, [1]), stored: record({ at: at(30) }) }, // outside the tree
      { raw: raw(503, [500, 1]), stored: record({ at: at(60_000) }) }, // after the run (a reused pid's child)
    ];
    expect(pinsOfTree(rs, 500, start, start + 1000).map((r) => r.raw.pid)).toEqual([500, 502]);
  });
});
