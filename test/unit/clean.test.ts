// Which pins clean may remove: stale persistent pins only when asked for by name (issue 14).
import { describe, expect, it } from 'vitest';
import { recheck, selectCandidates } from '../../src/analysis/clean.js';
import { classifyPins } from '../../src/analysis/classify.js';
import { objectKey } from '../../src/model.js';
import { ctx, doc, facts, map } from './fixtures.js';

const run = (since: string) => new Map([[objectKey('map', 5), { since, snapshotId: 3 }]]);
const all = () => true;

describe('clean: stale persistent pins', () => {
  const [stale, orphan] = classifyPins([facts('/tc/globals/jmp_map', map(5, 'jmp_map')), facts('/x', map(6))],
    ctx({ staleRuns: run('2026-11-21T12:00:00.000Z') }));
  const d = doc([stale!, orphan!]);

  it('are never candidates by default, nor with --status persistent alone', () => {
    expect(selectCandidates(d, { statuses: ['leaked', 'orphaned'], keep: all }).map((p) => p.path)).toEqual(['/x']);
    expect(selectCandidates(d, { statuses: ['persistent'], keep: all })).toEqual([]);
  });

  it('are candidates with --status persistent --stale; --older-than counts from when they became unused', () => {
    expect(selectCandidates(d, { statuses: ['persistent'], keep: all, stale: true }).map((p) => p.path)).toEqual(['/tc/globals/jmp_map']);
    const day = 86_400_000;
    const now = Date.parse('2026-11-24T12:00:00.000Z');
    expect(selectCandidates(d, { statuses: ['persistent'], keep: all, stale: true, createdBefore: now - 2 * day })).toHaveLength(1);
    expect(selectCandidates(d, { statuses: ['persistent'], keep: all, stale: true, createdBefore: now - 4 * day })).toHaveLength(0);
  });

  it('the re-check refuses one that is in use again, or persistent but no longer stale', () => {
    expect(recheck(stale!, stale!, ['persistent'], true)).toBeNull();
    const holders = new Map([[objectKey('map', 5), [{ pid: 10, startTime: 1, comm: 'tc', fds: [3], mntNs: 1, container: null }]]]);
    const [held] = classifyPins([facts('/tc/globals/jmp_map', map(5, 'jmp_map'))], ctx({ holders }));
    expect(recheck(stale!, held!, ['persistent'], true)).toBe('it is held now: held by pid 10 (tc) fd 3');
    expect(recheck(stale!, { ...stale!, stale: null }, ['persistent'], true)).toMatch(/^it is persistent and not stale now/);
    expect(recheck(stale!, stale!, ['persistent'], false)).toMatch(/^it is persistent and not stale now/);
  });
});
