// Objects explained (issue 16), pure: owners from the catalog, referrers and holders;
// what nothing explains; totals per owner.
import { describe, expect, it } from 'vitest';
import { catalogOwners, describeObjects, inheritOwners, objectTotals, ownerMatches, ownerTotals, withHistory } from '../../src/analysis/objects.js';
import { classifyPins } from '../../src/analysis/classify.js';
import { objectRefs } from '../../src/analysis/liveness.js';
import { loadCatalog } from '../../src/analysis/owners.js';
import type { Holder, KernelRef, ObjectFacts, Pin } from '../../src/model.js';
import { BOOT_MS, facts, graphCtx, map } from './fixtures.js';

const TAKEN = '2026-11-24T10:00:00.000Z';
const fact = (kind: ObjectFacts['kind'], id: number, name: string, over: Partial<ObjectFacts> = {}): ObjectFacts => ({
  kind, id, name, type: kind === 'map' ? 'hash' : kind === 'prog' ? 'sched_cls' : 'tcx', memlockBytes: 4096,
  loadTimeNs: null, loaderUid: null, note: null, ...over,
});
const holder = (pid: number, comm: string, container: Holder['container'] = null): Holder => ({ pid, startTime: 1, comm, fds: [3], mntNs: 1, container });
const docker = { runtime: 'docker', id: 'a'.repeat(64), podUid: null, cgroup: `/system.slice/docker-${'a'.repeat(64)}.scope` };

function describe_(input: { facts: ObjectFacts[]; refs?: KernelRef[]; holders?: [string, Holder[]][]; pins?: Pin[]; paths?: [string, string[]][] }) {
  const catalog = catalogOwners(input.facts, new Map(input.paths ?? []), loadCatalog());
  return describeObjects({
    facts: input.facts, pins: input.pins ?? [], holders: new Map(input.holders ?? []), refs: input.refs ?? [], unexplained: new Map(),
    catalog, bootEpochMs: BOOT_MS, takenAt: TAKEN,
  });
}

describe('owners of objects', () => {
  it('come from the catalog: a pin path first, then the name', () => {
    const owners = catalogOwners(
      [fact('map', 1, 'cilium_ct4'), fact('map', 2, 'stray'), fact('map', 3, 'tg_execve')],
      new Map([['map:2', ['/unknown/x', '/tc/globals/cilium_lb']], ['map:3', ['/tetragon/__base__/m']]]),
      loadCatalog(),
    );
    expect(owners.get('map:1')).toEqual({ tool: 'cilium', persistent: true, from: 'name' });
    expect(owners.get('map:2')).toEqual({ tool: 'cilium', persistent: true, from: 'path' });
    expect(owners.get('map:3')).toEqual({ tool: 'tetragon', persistent: false, from: 'path' });
  });

  it('pass down references, nearest referrer first, and only from referrers accepted', () => {
    const refs = objectRefs(new Map([[10, { id: 10, name: 'cil_x', mapIds: [1] }], [11, { id: 11, name: 'other', mapIds: [2] }]]),
      new Map([[20, { id: 20, type: 'tcx', progId: 11, defunct: false, target: null }]]));
    const own = new Map([['prog:10', 'cilium'], ['link:20', 'calico']]);
    const all = inheritOwners(own, refs);
    expect(all.get('map:1')).toMatchObject({ owner: 'cilium', ref: { what: 'used by program 10 (cil_x)' } });
    expect(all.get('prog:11')?.owner).toBe('calico');
    expect(all.get('map:2')?.owner).toBe('calico'); // transitively, link -> prog -> map
    expect(all.has('prog:10')).toBe(false); // an own owner is never overridden
    const liveOnly = inheritOwners(own, refs, (k) => k !== 'link:20');
    expect([...liveOnly.keys()]).toEqual(['map:1']);
  });

  it('for an object with none of its own: the catalog owner of a referrer beats its own holder; holders pass down too', () => {
    const refs = objectRefs(new Map([[10, { id: 10, name: 'cil_x', mapIds: [1] }], [11, { id: 11, name: 'app', mapIds: [2] }]]), new Map());
    const objs = describe_({
      facts: [fact('prog', 10, 'cil_x'), fact('prog', 11, 'app'), fact('map', 1, 'm1'), fact('map', 2, 'm2'), fact('map', 3, 'm3')],
      refs, holders: [['map:1', [holder(5, 'bpftool')]], ['prog:11', [holder(7, 'app', docker)]], ['map:3', [holder(8, 'loader')]]],
    });
    const by = (k: string) => objs.find((o) => `${o.kind}:${o.id}` === k)!;
    expect(by('map:1').owner).toEqual({ tool: 'cilium', from: 'referrer', persistent: true, container: null, via: 'used by program 10 (cil_x)' });
    expect(by('prog:11').owner).toEqual({ tool: 'app', from: 'holder', persistent: false, container: docker, via: 'held by pid 7 (app)' });
    expect(by('map:2').owner).toEqual({ tool: 'app', from: 'referrer', persistent: false, container: docker, via: 'used by program 11 (app)' });
    expect(by('map:3').owner).toMatchObject({ tool: 'loader', from: 'holder' });
    expect(by('prog:10').references).toEqual([{ kind: 'map', id: 1, via: 'used by program 10 (cil_x)' }]);
    expect(by('map:1').referencedBy).toEqual([{ kind: 'prog', id: 10, via: 'used by program 10 (cil_x)' }]);
  });

  it('--owner matches the tool, a container id from 12 characters, or "unknown"', () => {
    const [o, none] = describe_({ facts: [fact('prog', 11, 'app'), fact('map', 9, 'lone')], holders: [['prog:11', [holder(7, 'app', docker)]]] });
    expect(ownerMatches(o!, 'app')).toBe(true);
    expect(ownerMatches(o!, 'a'.repeat(12))).toBe(true);
    expect(ownerMatches(o!, 'a'.repeat(11))).toBe(false);
    expect(ownerMatches(none!, 'unknown')).toBe(true);
    expect(ownerTotals([o!, none!]).map((g) => g.owner).sort()).toEqual(['app (docker aaaaaaaaaaaa)', 'unknown owner']);
  });
});

describe('what nothing explains', () => {
  it('is an object with no pin, no holder and no named referrer; the count guard gives its counts when it ran', () => {
    const refs = objectRefs(new Map([[10, { id: 10, name: 'p', mapIds: [1] }]]), new Map());
    const f = [fact('prog', 10, 'p'), fact('map', 1, 'used'), fact('map', 2, 'held'), fact('map', 3, 'lost'), fact('prog', 4, 'lost_prog', { memlockBytes: 100 })];
    const objs = describeObjects({
      facts: f, pins: [], holders: new Map([['map:2', [holder(5, 'x')]]]), refs,
      unexplained: new Map([['map:3', { refs: 1, users: 1, indeterminate: false }]]),
      catalog: new Map(), bootEpochMs: BOOT_MS, takenAt: TAKEN,
    });
    const unexplained = objs.filter((o) => o.unexplained).map((o) => `${o.kind}:${o.id}`);
    // prog 10 too: nothing names what keeps it (a real scan would have its holder or link)
    expect(unexplained.sort()).toEqual(['map:3', 'prog:10', 'prog:4']);
    expect(objs.find((o) => o.id === 3)!.unexplained).toEqual({ refs: 1, users: 1, since: TAKEN, sinceSnapshot: null });
    expect(objs.find((o) => o.id === 4)!.unexplained).toEqual({ refs: null, users: null, since: TAKEN, sinceSnapshot: null });
    withHistory(objs, new Map([['map:3', { since: '2026-11-23T00:00:00.000Z', sinceSnapshot: 4 }]]));
    expect(objs.find((o) => o.id === 3)!.unexplained).toMatchObject({ since: '2026-11-23T00:00:00.000Z', sinceSnapshot: 4 });
    expect(objectTotals(objs)).toEqual({ maps: 3, progs: 2, links: 0, memlockBytes: 4 * 4096 + 100, unexplained: 3, unexplainedBytes: 2 * 4096 + 100 });
  });

  it('counts an object of unknown size as 0 bytes, and gives a program its load time', () => {
    const [p, m] = describe_({ facts: [fact('prog', 1, 'p', { loadTimeNs: 3_600_000_000_000n, loaderUid: 0 }), fact('map', 2, '', { memlockBytes: null, type: 'unknown' })] });
    expect(p!.loadedAt).toBe(new Date(BOOT_MS + 3_600_000).toISOString());
    expect(p!.loaderUid).toBe(0);
    // to the second: two scans whose boot epochs differ by the wall clock's corrections agree
    const at = (epoch: number, ns: bigint) => describeObjects({
      facts: [fact('prog', 1, 'p', { loadTimeNs: ns })], pins: [], holders: new Map(), refs: [], unexplained: new Map(),
      catalog: new Map(), bootEpochMs: epoch, takenAt: TAKEN,
    })[0]!.loadedAt;
    expect(at(BOOT_MS + 0.4, 3_600_123_000_000n)).toBe(at(BOOT_MS - 0.6, 3_600_123_000_000n));
    expect(at(BOOT_MS, 3_600_123_000_000n)).toBe(new Date(BOOT_MS + 3_600_000).toISOString());
    expect(objectTotals([p!, m!]).memlockBytes).toBe(4096);
  });
});

describe('pins the catalog cannot place (issue 16 item 3)', () => {
  const progs = [{ id: 10, name: 'cil_from_netdev', mapIds: [1] }];
  const pin = facts('/anywhere/m', map(1, 'plain'));
  const objectOwners = new Map([['prog:10', { tool: 'cilium', persistent: true, from: 'name' as const }]]);

  it('take the tool of the live program that uses them', () => {
    const [p] = classifyPins([pin], graphCtx({ progs }, {
      objectOwners, holders: new Map([['prog:10', [holder(5, 'cilium-agent')]]]),
    }));
    expect(p!.status).toBe('in-use');
    expect(p!.owner).toMatchObject({ tool: 'cilium', via: 'used by program 10 (cil_from_netdev)' });
    expect(p!.reasons).toContain('owner: cilium (used by program 10 (cil_from_netdev))');
  });

  it('but not from a program nothing keeps alive: the pin stays a leak, not persistent', () => {
    const [p] = classifyPins([pin], graphCtx({ progs }, { objectOwners }));
    expect(p!.status).toBe('orphaned');
    expect(p!.owner.tool).toBeNull();
  });
});
