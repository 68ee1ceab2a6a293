import { describe, expect, it } from 'vitest';
import { classifyPins } from '../../src/analysis/classify.js';
import { diffSnapshots, gate } from '../../src/analysis/diff.js';
import { objectKey, type Pin } from '../../src/model.js';
import { ctx, doc, facts, map } from './fixtures.js';

const orphan = (path: string, id: number, bytes = 1000) => classifyPins([facts(path, map(id, path.slice(1), bytes))], ctx())[0]!;
const held = (path: string, id: number) => classifyPins([facts(path, map(id, path.slice(1)))], ctx({
  holders: new Map([[objectKey('map', id), [{ pid: 1, startTime: 1, comm: 'a', fds: [3], mntNs: 1, container: null }]]]),
}))[0]!;
const leaked = (path: string, id: number, bytes = 1000): Pin => ({ ...orphan(path, id, bytes), status: 'leaked' });

describe('diff', () => {
  it('within a boot matches by instance, path and id', () => {
    const from = doc([held('/a', 1), orphan('/b', 2), held('/c', 3)]);
    const to = doc([leaked('/a', 1), held('/c', 3), orphan('/b', 9), orphan('/d', 4, 500)], { id: 2 });
    const d = diffSnapshots(from, to);
    expect(d.sameBoot).toBe(true);
    expect(d.added.map((p) => p.path)).toEqual(['/b', '/d']); // /b now holds another object
    expect(d.removed.map((p) => p.path)).toEqual(['/b']);
    expect(d.newlyLeaked.map((p) => p.path)).toEqual(['/a']);
    expect(d.newlyOrphaned.map((p) => p.path)).toEqual(['/b', '/d']);
    expect(d.resolved.map((p) => p.object!.id)).toEqual([2]);
    expect(d.statusChanged).toEqual([{ pin: to.pins[0], from: 'held', to: 'leaked' }]);
    expect(d.memlockDelta).toEqual({ total: 500, orphaned: 500, leaked: 1000 });
  });

  it('across a reboot matches by mount point, path, kind and name, never by stale ids', () => {
    const from = doc([orphan('/a', 1), orphan('/b', 2)], { bootId: 'boot-a' });
    const to = doc([orphan('/a', 77), orphan('/b', 1)].map((p) => ({ ...p, instance: '0:50' })), { bootId: 'boot-b', id: 2 });
    to.instances[0]!.dev = '0:50';
    const d = diffSnapshots(from, to);
    expect(d.sameBoot).toBe(false);
    expect(d.added).toEqual([]);
    expect(d.removed).toEqual([]);
    expect(d.newlyOrphaned).toEqual([]);
  });
});

describe('diff across boots with colliding keys', () => {
  it('pairs pins that share mount point, path, kind and name off in order, losing none', () => {
    // two pods' own bpffs instances, both mounted at /sys/fs/bpf, each with the same pin
    const podA = { ...orphan('/app/m', 1), instance: '0:40' };
    const podB = { ...orphan('/app/m', 2), instance: '0:41' };
    const from = doc([podA, podB], { bootId: 'boot-a' });
    from.instances = ['0:40', '0:41'].map((dev) => ({ ...from.instances[0]!, dev }));
    const to = doc([{ ...podA, instance: '0:50', object: { ...podA.object!, id: 7 } }], { bootId: 'boot-b', id: 2 });
    to.instances[0]!.dev = '0:50';
    const d = diffSnapshots(from, to);
    expect(d.added).toEqual([]);
    expect(d.removed).toHaveLength(1); // one of the two went away, not both, not neither
    expect(gate(to, from, { maxNewLeaks: 0, maxLeakedBytes: null }).newLeaks).toHaveLength(1);
  });
});

describe('gate', () => {
  it('counts pins that are leaks now and were absent or healthy at the baseline', () => {
    const base = doc([held('/a', 1), orphan('/old', 2)]);
    const now = doc([leaked('/a', 1, 300), orphan('/old', 2), orphan('/new', 3, 200)], { id: 2 });
    const g = gate(base, now, { maxNewLeaks: 0, maxLeakedBytes: null });
    expect(g.passed).toBe(false);
    expect(g.newLeaks.map((p) => p.path)).toEqual(['/a', '/new']);
    expect(g.newLeakedBytes).toBe(500);
    expect(gate(base, now, { maxNewLeaks: 2, maxLeakedBytes: null }).passed).toBe(true);
    expect(gate(base, now, { maxNewLeaks: null, maxLeakedBytes: 499 }).passed).toBe(false);
    expect(gate(base, now, { maxNewLeaks: null, maxLeakedBytes: 500 }).passed).toBe(true);
    expect(gate(base, base, { maxNewLeaks: 0, maxLeakedBytes: null }).passed).toBe(true);
  });
});
