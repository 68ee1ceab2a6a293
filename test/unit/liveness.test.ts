import { describe, expect, it } from 'vitest';
import { liveness, persistentResidue, unexplainedReferences, rootsOf } from '../../src/analysis/liveness.js';
import { classifyPins } from '../../src/analysis/classify.js';
import type { KernelRef } from '../../src/model.js';
import { facts, graphCtx, map } from './fixtures.js';

const prog = (id: number, name = 'p') => ({ kind: 'prog' as const, id, name, type: 'sched_cls', memlockBytes: 10 });
const tail = (array: number, slot: number, progId: number): KernelRef => ({
  to: { kind: 'prog', id: progId }, from: { kind: 'map', id: array }, what: `tail call slot ${slot} of prog array ${array}`, count: 1,
});
const tc = (progId: number): KernelRef => ({ to: { kind: 'prog', id: progId }, from: { kind: 'tc', id: 3 }, what: 'tc ingress of veth0 in netns 4026532301', count: 1 });

describe('liveness', () => {
  it('follows references transitively from an attachment: tail call target, its maps, its own prog array', () => {
    // tc -> prog 90 -> uses prog array 812 -> slot 3 -> prog 91 -> uses map 7 and prog array 813 -> slot 0 -> prog 92
    const c = graphCtx({
      progs: [{ id: 90, name: 'entry', mapIds: [812] }, { id: 91, name: 'stage2', mapIds: [7, 813] }, { id: 92, name: 'stage3', mapIds: [] }],
      refs: [tc(90), tail(812, 3, 91), tail(813, 0, 92)],
    });
    const pins = classifyPins([facts('/a', map(812)), facts('/b', prog(91)), facts('/c', map(7)), facts('/d', prog(92))], c);
    expect(pins.map((p) => p.status)).toEqual(['in-use', 'in-use', 'in-use', 'in-use']);
    expect(pins[1]!.reasons[0]).toBe('tail call slot 3 of prog array 812, used by program 90 (entry), tc ingress of veth0 in netns 4026532301');
    expect(pins[1]!.usedBy).toEqual([{ kind: 'map', id: 812, via: 'tail call slot 3 of prog array 812' }]);
    expect(pins[3]!.reasons[0]).toMatch(/^tail call slot 0 of prog array 813, used by program 91 \(stage2\), …$/);
  });

  it('a prog array nothing alive uses keeps its programs only as orphans', () => {
    const c = graphCtx({ progs: [{ id: 91, name: 'stage2', mapIds: [] }], refs: [tail(812, 3, 91)] });
    const [arr, p] = classifyPins([facts('/a', map(812)), facts('/b', prog(91))], c);
    expect(arr!.status).toBe('orphaned');
    expect(p!.status).toBe('orphaned');
    expect(p!.usedBy).toEqual([{ kind: 'map', id: 812, via: 'tail call slot 3 of prog array 812' }]);
  });

  it('a held outer map keeps its inner maps in use', () => {
    const holders = new Map([['map:5', [{ pid: 10, startTime: 1, comm: 'agent', fds: [3], mntNs: 1, container: null }]]]);
    const inner: KernelRef = { to: { kind: 'map', id: 6 }, from: { kind: 'map', id: 5 }, what: 'inner map at key 0 of array_of_maps 5', count: 1 };
    const [m] = classifyPins([facts('/inner', map(6))], graphCtx({ refs: [inner] }, { holders }));
    expect(m!.status).toBe('in-use');
    expect(m!.reasons[0]).toBe('inner map at key 0 of array_of_maps 5, held by pid 10 (agent)');
  });

  it('roots prefer holders, then live links, then the count guard', () => {
    const { roots, fallback } = rootsOf(
      new Map([['prog:1', [{ pid: 5, comm: 'x' }]]]),
      [{ id: 2, defunct: false }, { id: 3, defunct: true }],
      new Map([['prog:1', { refs: 1, users: 0, indeterminate: false }], ['map:4', { refs: 2, users: 0, indeterminate: false }]]),
    );
    expect([...roots]).toEqual([['prog:1', 'held by pid 5 (x)'], ['link:2', '']]);
    expect([...fallback]).toEqual([['map:4', expect.stringMatching(/^2 references that pinleak cannot name/)]]);
    expect(liveness(roots, [], fallback).live.has('link:3')).toBe(false);
    // a named reference's reason wins over the count guard's for the same object
    const named: KernelRef = { to: { kind: 'map', id: 4 }, from: { kind: 'sockets', id: 2 }, what: 'holds 2 sockets', count: null };
    expect(liveness(roots, [named], fallback).live.get('map:4')).toBe('holds 2 sockets');
  });
});

describe('count guard', () => {
  const refs: KernelRef[] = [
    { to: { kind: 'map', id: 1 }, from: { kind: 'prog', id: 9 }, what: 'used by program 9', count: 1 },
    { to: { kind: 'prog', id: 9 }, from: { kind: 'sockets', id: 1 }, what: 'sk_msg of sockmap 4', count: null },
  ];
  it('explains refcnt by the iterator, pins, files and named references; the rest is unexplained', () => {
    const counts = new Map([
      ['map:1', { refcnt: 1 + 2 + 1 + 1, usercnt: 3 }], // iterator + 2 pins + 1 file + prog 9
      ['map:2', { refcnt: 1 + 1 + 2, usercnt: 1 }], // a pin and two references nobody names (socket filter, LWT route)
      ['map:3', { refcnt: 1 + 1 + 1, usercnt: 2 }], // a pin and an fd in flight
      ['prog:9', { refcnt: 5, usercnt: null }],
    ]);
    const pins = new Map([['map:1', 2], ['map:2', 1], ['map:3', 1]]);
    const files = new Map([['map:1', 1]]);
    const u = unexplainedReferences({ counts, pins, files, refs });
    expect(u.has('map:1')).toBe(false);
    expect(u.get('map:2')).toEqual({ refs: 2, users: 0, indeterminate: false });
    expect(u.get('map:3')).toEqual({ refs: 1, users: 1, indeterminate: false });
    expect(u.get('prog:9')!.indeterminate).toBe(true);
  });

  it('a residue must persist across two reads: a referrer being released is not one', () => {
    const a = new Map([['map:2', { refs: 2, users: 0, indeterminate: false }], ['map:5', { refs: 1, users: 0, indeterminate: false }]]);
    const b = new Map([['map:2', { refs: 1, users: 0, indeterminate: false }]]);
    expect([...persistentResidue(a, b)]).toEqual([['map:2', { refs: 1, users: 0, indeterminate: false }]]);
  });

  it('an unexplained residue makes an otherwise orphaned pin in-use, with a reason that says so', () => {
    const unexplained = new Map([['map:2', { refs: 2, users: 0, indeterminate: false }], ['map:3', { refs: 0, users: 1, indeterminate: false }]]);
    const [m2, m3] = classifyPins([facts('/m2', map(2)), facts('/m3', map(3))], graphCtx({}, { unexplained }));
    expect(m2!.status).toBe('in-use');
    expect(m2!.reasons[0]).toMatch(/^2 references that pinleak cannot name/);
    expect(m3!.status).toBe('in-use');
    expect(m3!.reasons[0]).toMatch(/^a file that pinleak cannot see still holds it/);
  });
});
