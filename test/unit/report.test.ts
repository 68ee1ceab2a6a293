// The history report's data: series summed in SQL, owners folded, partial scans, and the
// escaping that keeps hostile names out of the page's markup and scripts.
import { describe, expect, it } from 'vitest';
import type { Pin, Status } from '../../src/model.js';
import { historySeries, saveSnapshot } from '../../src/store/index.js';
import { chartData, MAX_OWNERS, OTHER_OWNERS, storedPartialReasons } from '../../src/report/history.js';
import { escapeHtml, scriptJson } from '../../src/report/html.js';
import { doc, map, storeForEachTest } from './fixtures.js';

function pin(p: string, status: Status, tool: string | null, object = map(1)): Pin {
  return {
    instance: '0:39', path: p, mountPaths: [], inode: 1, createdAt: '2026-11-24T10:00:00.000Z', uid: 0, gid: 0, mode: '0600',
    object, holders: [], usedBy: [], status, reasons: [], owner: { tool, persistent: false, pathPid: null, pathPidAlive: null }, creator: null,
  };
}

const fresh = storeForEachTest('pinleak-report-unit-');

describe('historySeries', () => {
  it('sums each status by owner in SQL, each object once, adding up to the summary', () => {
    const pins = [
      pin('/otel/1/a', 'leaked', 'otel', map(1, 'a', 1000)),
      pin('/otel/1/a2', 'leaked', null, map(1, 'a', 1000)), // the same object at a second path, no owner
      pin('/otel/1/b', 'leaked', 'otel', map(2, 'b', 500)),
      pin('/x/c', 'leaked', null, map(3, 'c', 300)),
      pin('/y/d', 'orphaned', null, map(4, 'd', 70)),
      pin('/z/e', 'held', 'cilium', map(5, 'e', 9999)),
    ];
    const d = doc(pins, { id: null, takenAt: '2026-11-24T10:00:00.000Z' });
    expect(d.summary.memlockBytes).toEqual({ total: 1000 + 500 + 300 + 70 + 9999, leaked: 1800, orphaned: 70 });
    saveSnapshot(fresh.store, d);
    const s = historySeries(fresh.store);
    expect(s.points).toHaveLength(1);
    expect(new Set(s.leakBytes.map((r) => `${r.status} ${r.owner} ${r.bytes}`))).toEqual(new Set(['leaked otel 1500', 'leaked null 300', 'orphaned null 70']));
    const c = chartData(s);
    expect(c.leaked.map((o) => [o.owner, o.values])).toEqual([['otel', [1500]], ['unknown', [300]]]);
    expect(c.leakedTotal).toEqual([1800]);
    expect(c.pins.find((p) => p.status === 'leaked')!.values).toEqual([4]);
  });

  it('leaves out snapshots taken before `since`, and orders by time taken', () => {
    saveSnapshot(fresh.store, doc([pin('/a', 'leaked', 't', map(1))], { id: null, takenAt: '2026-11-24T12:00:00.000Z' }));
    saveSnapshot(fresh.store, doc([pin('/a', 'leaked', 't', map(1))], { id: null, takenAt: '2026-11-24T10:00:00.000Z' }));
    saveSnapshot(fresh.store, doc([], { id: null, takenAt: '2026-11-24T11:00:00.000Z' }));
    expect(historySeries(fresh.store).points.map((p) => p.meta.id)).toEqual([2, 3, 1]);
    const later = historySeries(fresh.store, '2026-11-24T10:30:00.000Z');
    expect(later.points.map((p) => p.meta.id)).toEqual([3, 1]);
    expect(later.leakBytes.map((r) => r.snapshotId)).toEqual([1]);
    expect(chartData(later).leaked[0]!.values).toEqual([0, 1000]);
  });

  it('folds owners past the limit into one series that keeps the totals', () => {
    const pins = Array.from({ length: MAX_OWNERS + 3 }, (_, i) => pin(`/o${i}`, 'leaked', `tool${i}`, map(10 + i, 'm', 100 * (i + 1))));
    saveSnapshot(fresh.store, doc(pins, { id: null }));
    const c = chartData(historySeries(fresh.store));
    expect(c.leaked).toHaveLength(MAX_OWNERS);
    expect(c.leaked[0]!.owner).toBe(`tool${MAX_OWNERS + 2}`); // the most memory first
    expect(c.leaked.at(-1)!.owner).toBe(OTHER_OWNERS);
    expect(c.leaked.reduce((s, o) => s + o.values[0]!, 0)).toBe(c.leakedTotal[0]);
  });
});

describe('partial scans', () => {
  it('come from the namespaces and instances a snapshot could not read, not from other errors', () => {
    const d = doc([], { id: null });
    d.errors = [{ scope: 'prog 12', message: 'gone' }, { scope: 'namespace 4026532999', message: 'no process' }, { scope: 'instance 0:39', message: 'EACCES' }, { scope: 'instance 0:39', message: 'EIO' }];
    saveSnapshot(fresh.store, d);
    saveSnapshot(fresh.store, doc([], { id: null }));
    const s = historySeries(fresh.store);
    expect(storedPartialReasons(s.points[0]!)).toEqual(['instance 0:39: EACCES', 'namespace 4026532999: no process']);
    expect(storedPartialReasons(s.points[1]!)).toEqual([]);
    expect(chartData(s).partial).toEqual([0]);
  });

  it('a verdict stored with the snapshot wins over its errors', () => {
    const whole = doc([], { id: null });
    whole.errors = [{ scope: 'instance 0:39', message: 'EIO' }];
    Object.assign(whole.snapshot, { partial: false, partialReasons: [] });
    const blind = doc([], { id: null });
    Object.assign(blind.snapshot, { partial: true, partialReasons: ['no processes are visible'] });
    saveSnapshot(fresh.store, whole);
    saveSnapshot(fresh.store, blind);
    const s = historySeries(fresh.store);
    expect(s.points.map(storedPartialReasons)).toEqual([[], ['no processes are visible']]);
  });
});

describe('escaping', () => {
  it('keeps hostile names out of markup and out of the data script', () => {
    expect(escapeHtml('<img src=x onerror="a()">&\'\x1b')).toBe('&lt;img src=x onerror=&quot;a()&quot;&gt;&amp;&#39;\\x1b');
    const json = scriptJson({ owner: '</script><script>alert(1)</script>\u2028' });
    expect(json).not.toMatch(/[<>\u2028]/);
    expect(JSON.parse(json)).toEqual({ owner: '</script><script>alert(1)</script>\u2028' });
  });
});
