// Snapshot documents for the store tests.
import type { Pin, SnapshotDoc, Status } from '../../src/model.js';

export const BOOT = '6f1c2a4e-0000-4000-8000-000000000001';
export const OTHER_BOOT = '6f1c2a4e-0000-4000-8000-000000000002';

const HOST_NS = 4026531832;
const APP_NS = 4026532176;
const TOKEN_NS = 4026532999;

export function richDoc(opts: { label?: string | null; takenAt?: string; bootId?: string } = {}): SnapshotDoc {
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
export function bigDoc(pins: number, holders: number, opts: { bootId?: string; takenAt?: string } = {}): SnapshotDoc {
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
