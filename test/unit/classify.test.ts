import { describe, expect, it } from 'vitest';
import { classifyPins } from '../../src/analysis/classify.js';
import { objectKey } from '../../src/model.js';
import { summarize } from '../../src/analysis/summary.js';
import { ctx, facts, graphCtx, map, SCAN_TIME, ticksAt } from './fixtures.js';

const PIN_TIME = '2026-11-24T10:00:00.000Z';
const before = (s: number) => ticksAt(Date.parse(PIN_TIME) - s * 1000);
const after = (s: number) => ticksAt(Date.parse(PIN_TIME) + s * 1000);

describe('statuses', () => {
  it('held: a live process holds an fd', () => {
    const holders = new Map([[objectKey('map', 5), [{ pid: 10, startTime: before(60), comm: 'agent', fds: [7], mntNs: 1, container: null }]]]);
    const [p] = classifyPins([facts('/a', map(5))], ctx({ holders }));
    expect(p!.status).toBe('held');
    expect(p!.reasons[0]).toBe('held by pid 10 (agent) fd 7');
  });

  it('in-use: a map used by a program behind a live link; the program too', () => {
    const c = graphCtx({
      progs: [{ id: 20, name: 'p', mapIds: [5] }],
      links: [{ id: 30, progId: 20, defunct: false, type: 'cgroup', target: 'cgroup 7' }],
    });
    const [m, prog] = classifyPins([facts('/m', map(5)), facts('/p', { kind: 'prog', id: 20, name: 'p', type: 'cgroup_skb', memlockBytes: 10 })], c);
    expect(m!.status).toBe('in-use');
    expect(m!.usedBy).toEqual([{ kind: 'prog', id: 20, via: 'used by program 20 (p)' }]);
    expect(m!.reasons[0]).toBe('used by program 20 (p), behind live cgroup link 30 (cgroup 7)');
    expect(prog!.status).toBe('in-use');
    expect(prog!.reasons[0]).toMatch(/behind live cgroup link 30/);
  });

  it('in-use: a program attached to a cgroup without a link', () => {
    const c = graphCtx({
      progs: [{ id: 20, name: 'p', mapIds: [] }],
      refs: [{ to: { kind: 'prog', id: 20 }, from: { kind: 'cgroup', id: 77 }, what: 'attached to cgroup /x (cgroup_inet_ingress)', count: 1 }],
    });
    const [prog] = classifyPins([facts('/p', { kind: 'prog', id: 20, name: 'p', type: 'cgroup_skb', memlockBytes: 10 })], c);
    expect(prog!.status).toBe('in-use');
    expect(prog!.reasons[0]).toBe('attached to cgroup /x (cgroup_inet_ingress)');
    expect(prog!.usedBy).toEqual([{ kind: 'cgroup', id: 77, via: 'attached to cgroup /x (cgroup_inet_ingress)' }]);
  });

  it('a link is never in-use: unheld it is orphaned, with a gone target it is leaked', () => {
    const c = graphCtx({
      progs: [{ id: 20, name: 'p', mapIds: [5] }],
      links: [{ id: 30, progId: 20, defunct: true, type: 'cgroup', target: null }],
    });
    const link = { kind: 'link' as const, id: 30, name: 'p', type: 'cgroup', memlockBytes: 0, progId: 20, defunct: true };
    const [l, m] = classifyPins([facts('/l', link), facts('/m', map(5))], c);
    expect(l!.status).toBe('leaked');
    expect(l!.reasons.join(' ')).toMatch(/defunct/);
    expect(m!.status).toBe('orphaned'); // a defunct link keeps nothing alive
    const [l2] = classifyPins([facts('/l', { ...link, defunct: false })], graphCtx({ links: [{ id: 30, progId: 20, defunct: false, type: 'cgroup', target: 'cgroup 1' }] }));
    expect(l2!.status).toBe('orphaned');
  });

  it('orphaned when nobody is known to have made it; persistent for preload, catalog and ignore rules', () => {
    const [o] = classifyPins([facts('/x', map(5))], ctx());
    expect(o!.status).toBe('orphaned');
    expect(o!.creator).toBeNull();
    const [pre] = classifyPins([facts('/maps.debug', null, { preload: true, error: 'cannot open: EPERM' })], ctx());
    expect(pre!.status).toBe('persistent');
    expect(pre!.reasons[0]).toMatch(/does not open as a BPF object \(EPERM\)/);
    const [cil] = classifyPins([facts('/tc/globals/cilium_ct4_global', map(6, 'cilium_ct4_glob'))], ctx());
    expect(cil!.status).toBe('persistent');
    expect(cil!.owner.tool).toBe('cilium');
    const config = { ...ctx().config, ignore: [{ path: '/mine/**', reason: 'kept by our loader' }] };
    const [ign] = classifyPins([facts('/mine/a', map(7))], ctx({ config }));
    expect(ign!.status).toBe('persistent');
    expect(ign!.reasons.join(' ')).toMatch(/kept by our loader/);
  });

  it('unreadable keeps the reason', () => {
    const [u] = classifyPins([facts('/x', null, { error: 'cannot open: EACCES' })], ctx());
    expect(u!.status).toBe('unreadable');
    expect(u!.reasons).toEqual(['cannot open: EACCES']);
  });
});

describe('creators', () => {
  it('history: the earliest holder that existed when the pin was made, once exited, makes it leaked', () => {
    const history = new Map([[objectKey('map', 5), [
      { pid: 4242, startTime: before(30), comm: 'otel-go-instru', snapshotId: 12, container: null },
    ]]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ history }));
    expect(p!.status).toBe('leaked');
    expect(p!.creator).toMatchObject({ pid: 4242, alive: false, firstSeenSnapshot: 12, comm: 'otel-go-instru' });
    expect(p!.reasons).toContain('creator 4242 (otel-go-instru) seen in snapshot 12 has exited');
  });

  it('history: a holder that started after the pin was made is not its creator', () => {
    const history = new Map([[objectKey('map', 5), [{ pid: 50, startTime: after(5), comm: 'late', snapshotId: 3, container: null }]]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ history }));
    expect(p!.creator).toBeNull();
    expect(p!.status).toBe('orphaned');
  });

  it('history: a creator whose pid now runs another process has still exited', () => {
    const history = new Map([[objectKey('map', 5), [{ pid: 50, startTime: before(10), comm: 'maker', snapshotId: 3, container: null }]]]);
    const processes = new Map([[50, { pid: 50, startTime: after(20), comm: 'other' }]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ history, processes }));
    expect(p!.status).toBe('leaked');
    expect(p!.creator!.alive).toBe(false);
  });

  it('a live creator keeps the pin orphaned, not leaked', () => {
    const history = new Map([[objectKey('map', 5), [{ pid: 50, startTime: before(10), comm: 'maker', snapshotId: 3, container: null }]]]);
    const processes = new Map([[50, { pid: 50, startTime: before(10), comm: 'maker' }]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ history, processes }));
    expect(p!.status).toBe('orphaned');
    expect(p!.creator!.alive).toBe(true);
  });

  it('path pid (OpenTelemetry layout): gone, reused, or alive', () => {
    const otel = facts('/1234/alloc_map', map(5, 'alloc_map'));
    const [gone] = classifyPins([otel], ctx());
    expect(gone!.status).toBe('leaked');
    expect(gone!.owner).toEqual({ tool: 'otel-go-instrumentation', persistent: false, pathPid: 1234, pathPidAlive: false });
    expect(gone!.creator).toMatchObject({ pid: 1234, alive: false, startTime: null });

    const reused = new Map([[1234, { pid: 1234, startTime: after(2), comm: 'bash' }]]);
    const [r] = classifyPins([otel], ctx({ processes: reused }));
    expect(r!.status).toBe('leaked');
    expect(r!.owner.pathPidAlive).toBe(false);

    const alive = new Map([[1234, { pid: 1234, startTime: before(100), comm: 'app' }]]);
    const [a] = classifyPins([otel], ctx({ processes: alive }));
    expect(a!.status).toBe('orphaned');
    expect(a!.owner.pathPidAlive).toBe(true);
    expect(a!.creator).toMatchObject({ pid: 1234, alive: true, comm: 'app' });
  });

  it('a start time within the clock tick of the pin time still counts as existing', () => {
    const history = new Map([[objectKey('map', 5), [{ pid: 9, startTime: ticksAt(PIN_TIME) + 1, comm: 'fast', snapshotId: 1, container: null }]]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ history }));
    expect(p!.creator?.pid).toBe(9);
  });

  it('run records beat history', () => {
    const recorded = new Map([[objectKey('map', 5), { pid: 77, startTime: before(1), comm: 'loader', snapshotId: 4, container: null, source: 'run' as const }]]);
    const history = new Map([[objectKey('map', 5), [{ pid: 9, startTime: before(50), comm: 'x', snapshotId: 1, container: null }]]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ recorded, history }));
    expect(p!.creator).toMatchObject({ pid: 77, source: 'run', firstSeenSnapshot: 4 });
    expect(p!.reasons.join(' ')).toMatch(/recorded by pinleak run has exited/);
  });
});

describe('pins the recorder saw made (watch, issue 11)', () => {
  const pinned = (pid: number, atMs: number, over: object = {}) => ({
    pid, startTime: before(1), comm: 'loader', snapshotId: null, container: null, source: 'watch' as const, pinnedAtMs: atMs, ...over,
  });
  const at = (s: number) => Date.parse(PIN_TIME) + s * 1000;

  it('a recorded pin is evidence 1, above run records and history, and names the container and the time', () => {
    const container = { runtime: 'docker', id: 'abc123def4567890'.padEnd(64, '0'), podUid: null, cgroup: '/system.slice/docker-x.scope' };
    const pinRecords = new Map([[objectKey('map', 5), [pinned(4242, at(0), { container })]]]);
    const recorded = new Map([[objectKey('map', 5), { pid: 77, startTime: before(1), comm: 'other', snapshotId: 4, container: null, source: 'run' as const }]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ pinRecords, recorded }));
    expect(p!.status).toBe('leaked');
    expect(p!.creator).toMatchObject({ pid: 4242, comm: 'loader', alive: false, source: 'watch', pinnedAt: PIN_TIME, container });
    expect(p!.reasons).toContain('pinned by 4242 (loader) in container abc123def456 at 10:00:00, exited');
  });

  it('of several pins of one object, the last made before this pin\'s ctime; a live pinner keeps it orphaned', () => {
    const pinRecords = new Map([[objectKey('map', 5), [pinned(1, at(-60)), pinned(2, at(-5)), pinned(3, at(30))]]]);
    const [p] = classifyPins([facts('/x', map(5))], ctx({ pinRecords }));
    expect(p!.creator?.pid).toBe(2);
    const [early] = classifyPins([facts('/y', map(5), { ctimeMs: at(-120) })], ctx({ pinRecords }));
    expect(early!.creator?.pid).toBe(1); // none before it: the first
    const live = new Map([[2, { pid: 2, startTime: before(1), comm: 'loader' }]]);
    const [q] = classifyPins([facts('/x', map(5))], ctx({ pinRecords, processes: live }));
    expect(q!.status).toBe('orphaned');
    expect(q!.creator).toMatchObject({ pid: 2, alive: true, source: 'watch' });
  });

  it('a pin made while a watch recorded, without a record, says so and stays orphaned', () => {
    const watchCoverage = [{ fromMs: at(-3600), untilMs: at(60), pid: 4711, drops: 0 }];
    const [p] = classifyPins([facts('/x', map(5))], ctx({ watchCoverage }));
    expect(p!.status).toBe('orphaned');
    expect(p!.reasons.at(-1)).toBe(`made at ${PIN_TIME} while pinleak watch (pid 4711) recorded every pin, yet no pin of this object was recorded: renamed or hard-linked from an older pin`);
    const dropped = [{ ...watchCoverage[0]!, drops: 3 }];
    const [d] = classifyPins([facts('/x', map(5))], ctx({ watchCoverage: dropped }));
    expect(d!.reasons.at(-1)).toMatch(/, or its record was among the 3 the recorder dropped$/);
    // outside the coverage (after the last stored drain), or with a record: nothing said
    const [later] = classifyPins([facts('/x', map(5), { ctimeMs: at(120) })], ctx({ watchCoverage }));
    expect(later!.reasons.join(' ')).not.toMatch(/pinleak watch/);
    const pinRecords = new Map([[objectKey('map', 5), [pinned(2, at(0))]]]);
    const [rec] = classifyPins([facts('/x', map(5))], ctx({ watchCoverage, pinRecords }));
    expect(rec!.reasons.join(' ')).not.toMatch(/yet no pin/);
  });
});

describe('persistent pins: stale, and reasons that agree (issue 14)', () => {
  const tcMap = (id: number) => facts('/tc/globals/jmp_map', map(id, 'jmp_map'));

  it('a catalog pin nothing uses is persistent and stale, since this scan when no stored run says otherwise', () => {
    const [p] = classifyPins([tcMap(5)], ctx());
    expect(p!.status).toBe('persistent');
    expect(p!.stale).toEqual({ since: SCAN_TIME, sinceSnapshot: null });
    expect(p!.reasons).toEqual([
      'no process holds it and nothing alive in the kernel uses it; only bpffs pins keep it',
      'iproute2 keeps its pins on purpose (rule tc/globals/*)',
      'stale: nothing alive uses it (first found unused by this scan)',
    ]);
  });

  it('a stored run carries on: unused since its first snapshot, and for how long', () => {
    const staleRuns = new Map([[objectKey('map', 5), { since: '2026-11-21T12:00:00.000Z', snapshotId: 12 }]]);
    const [p] = classifyPins([tcMap(5)], ctx({ staleRuns }));
    expect(p!.stale).toEqual({ since: '2026-11-21T12:00:00.000Z', sinceSnapshot: 12 });
    expect(p!.reasons.at(-1)).toBe('stale: nothing alive has used it since snapshot 12 (3 days)');
  });

  it('in use: says what uses it first, then why it persists; in-use, not persistent, never stale', () => {
    const c = graphCtx({
      progs: [{ id: 20, name: 'cls', mapIds: [5] }],
      refs: [{ to: { kind: 'prog', id: 20 }, from: { kind: 'tc', id: 3 }, what: 'tc ingress of dummy0', count: 1 }],
    }, { staleRuns: new Map([[objectKey('map', 5), { since: '2026-11-21T12:00:00.000Z', snapshotId: 12 }]]) });
    const [p] = classifyPins([tcMap(5)], c);
    expect(p!.status).toBe('in-use');
    expect(p!.stale).toBeNull();
    expect(p!.reasons).toEqual(['used by program 20 (cls), tc ingress of dummy0', 'iproute2 keeps its pins on purpose (rule tc/globals/*)']);
    expect(p!.owner).toMatchObject({ tool: 'iproute2', persistent: true });

    const holders = new Map([[objectKey('map', 5), [{ pid: 10, startTime: before(60), comm: 'agent', fds: [7], mntNs: 1, container: null }]]]);
    const [h] = classifyPins([tcMap(5)], ctx({ holders }));
    expect(h!.status).toBe('held');
    expect(h!.stale).toBeNull();
    expect(h!.reasons).toEqual(['held by pid 10 (agent) fd 7', 'iproute2 keeps its pins on purpose (rule tc/globals/*)']);
  });

  it('a name-prefix owner says so; a non-persistent owner is named, never "on purpose"', () => {
    const [n] = classifyPins([facts('/elsewhere/x', map(5, 'cilium_ipcache'))], ctx());
    expect(n!.reasons).toContain('cilium keeps its pins on purpose (name prefix cilium_)');
    const [t] = classifyPins([facts('/tetragon/__base__/m', map(6))], ctx());
    expect(t!.status).toBe('orphaned');
    expect(t!.stale).toBeNull();
    expect(t!.reasons.at(-1)).toBe('owner: tetragon');
  });

  it('a live persistent link is not stale (its attachment is its use); ignore rules and preload iterators never are', () => {
    const link = { kind: 'link' as const, id: 30, name: 'cil_from_netdev', type: 'tcx', memlockBytes: 0, progId: 20, defunct: false };
    const c = graphCtx({ links: [{ id: 30, progId: 20, defunct: false, type: 'tcx', target: 'ifindex 2' }] });
    const [l] = classifyPins([facts('/cilium/devices/eth0/links/cil_from_netdev', link)], c);
    expect(l!.status).toBe('persistent');
    expect(l!.stale).toBeNull();
    const config = { ...ctx().config, ignore: [{ path: '/tc/**', reason: 'ours' }] };
    const [ign] = classifyPins([tcMap(5)], ctx({ config }));
    expect(ign!.status).toBe('persistent');
    expect(ign!.stale).toBeNull();
    const [pre] = classifyPins([facts('/maps.debug', null, { preload: true, error: 'cannot open: EPERM' })], ctx());
    expect(pre!.stale).toBeNull();
  });

  it('the summary counts stale pins and their memory once per object', () => {
    const pins = classifyPins([tcMap(5), facts('/tc/globals/again', map(5, 'jmp_map')), facts('/x', map(6))], ctx());
    expect(summarize(pins, 1, 1).stale).toEqual({ pins: 2, memlockBytes: 1000 });
  });
});

describe('run-window evidence', () => {
  it('a pin made while `run` ran its command, never seen held by it, is orphaned, not leaked: timing is no proof', () => {
    const recorded = new Map([[objectKey('map', 5), { pid: 77, startTime: 1, comm: 'loader', snapshotId: null, container: null, source: 'run-window' as const }]]);
    const [p] = classifyPins([facts('/w', map(5))], ctx({ recorded }));
    expect(p!.creator).toMatchObject({ pid: 77, source: 'run-window', alive: false });
    expect(p!.status).toBe('orphaned');
    expect(p!.reasons.join(' ')).toMatch(/run by pinleak run while the pin was made, has exited; only the time points at it/);
    const seen = new Map([[objectKey('map', 5), { ...recorded.get(objectKey('map', 5))!, source: 'run' as const }]]);
    expect(classifyPins([facts('/w', map(5))], ctx({ recorded: seen }))[0]!.status).toBe('leaked');
  });
});
