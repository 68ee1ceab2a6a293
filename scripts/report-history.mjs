#!/usr/bin/env node
// A long synthetic history for `pinleak report`, written through the store's own write
// path (saveSnapshot), in seconds rather than the hours 10,000 real scans would take.
//
//   node scripts/report-history.mjs --db FILE [--snapshots 10000] [--pins 20] [--partial-every 500]
//
// One snapshot every 5 minutes of one boot: --pins pins held by cilium, a leak of
// otel-go-instrumentation that grows by one pin every 250 snapshots, a few orphaned pins
// of unknown owner that come and go, six owners more that leak now and then (so the chart
// must fold owners), and every --partial-every-th scan partial (a mount namespace it could
// not read). Prints one JSON line: snapshots, pins stored, seconds, file size. Needs `npm
// run build` first (it imports dist/).
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = (p) => fileURLToPath(new URL(`../dist/${p}`, import.meta.url));
const { openStore, saveSnapshot } = await import(dist('store/index.js'));
const { summarize } = await import(dist('analysis/summary.js'));

function parseArgs(argv) {
  const o = { db: null, snapshots: 10000, pins: 20, partialEvery: 500 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${argv[i]} needs a whole number >= 1, got ${v}`);
      i++;
      return n;
    };
    switch (argv[i]) {
      case '--db': o.db = v; i++; break;
      case '--snapshots': o.snapshots = num(); break;
      case '--pins': o.pins = num(); break;
      case '--partial-every': o.partialEvery = num(); break;
      default: throw new Error(`unknown argument ${argv[i]} (see the comment at the top of ${process.argv[1]})`);
    }
  }
  if (!o.db) throw new Error('--db FILE is required');
  return o;
}

const BOOT = '0d6f6a38-5b1d-4f7e-9b0e-000000000001';
const HOST_NS = 4026531840;
const START = Date.parse('2026-10-01T00:00:00.000Z');
const EXTRA_OWNERS = ['tetragon', 'calico', 'bpfman', 'katran', 'inspektor-gadget', 'beyla', 'libxdp'];

function pin(path, id, status, tool, memlockBytes, creator) {
  return {
    instance: '0:38', path, mountPaths: [{ mntNs: HOST_NS, path: `/sys/fs/bpf${path}` }], inode: id, createdAt: '2026-10-01T00:00:00.000Z',
    uid: 0, gid: 0, mode: '0600', object: { kind: 'map', id, name: path.split('/').pop().slice(0, 15), type: 'hash', memlockBytes },
    holders: status === 'held' ? [{ pid: 3733, startTime: 1000, comm: 'cilium-agent', fds: [7], mntNs: HOST_NS, container: null }] : [],
    usedBy: [], status, reasons: [status === 'held' ? 'held by 3733 (cilium-agent)' : creator ? `creator ${creator.pid} (${creator.comm}) seen in snapshot 1 has exited` : 'no process holds it and its creator is not known'],
    owner: { tool, persistent: false, pathPid: null, pathPidAlive: null }, creator,
  };
}

function snapshotDoc(i, o) {
  const pins = [];
  for (let k = 0; k < o.pins; k++) pins.push(pin(`/cilium/m${k}`, 1 + k, 'held', 'cilium', 65536));
  const leakCount = 1 + Math.floor(i / 250);
  for (let k = 0; k < leakCount; k++) {
    pins.push(pin(`/otel/${9000 + k}/events`, 100000 + k, 'leaked', 'otel-go-instrumentation', 12288 + (k % 7) * 4096,
      { pid: 9000 + k, startTime: 5000 + k, comm: 'otel-go-instru', alive: false, firstSeenSnapshot: 1, source: 'history',
        container: { runtime: 'containerd', id: `c0ffee${String(k).padStart(6, '0')}`, podUid: null, cgroup: '/kubepods' } }));
  }
  for (let k = 0; k < (i % 24) / 4; k++) pins.push(pin(`/scratch/o${k}`, 200000 + k, 'orphaned', null, 8192, null));
  EXTRA_OWNERS.forEach((tool, t) => {
    if ((i + t * 37) % 300 < 60) pins.push(pin(`/${tool}/leak`, 300000 + t, 'leaked', tool, 4096 * (t + 1), { pid: 20000 + t, startTime: 1, comm: tool.slice(0, 15), alive: false, firstSeenSnapshot: 1, source: 'history' }));
  });
  const partial = i > 0 && i % o.partialEvery === 0;
  const namespaces = [{ mntNs: HOST_NS, reachedVia: 'process', pids: [1], processCount: 1, nsfsPaths: [], error: null }];
  const errors = [];
  if (partial) {
    namespaces.push({ mntNs: 4026532999, reachedVia: 'process', pids: [4242], processCount: 1, nsfsPaths: [], error: 'could not read the mountinfo of any of its 1 process(es); they exited or are not visible' });
    errors.push({ scope: 'namespace 4026532999', message: namespaces[1].error });
  }
  const instances = [{ dev: '0:38', mounts: [{ mntNs: HOST_NS, mountId: 30, mountPoint: '/sys/fs/bpf', root: '/', superOptions: 'rw' }], delegation: null, pinCount: pins.length, memlockBytes: 0, error: null }];
  return {
    schemaVersion: 1,
    snapshot: { id: null, takenAt: new Date(START + i * 300_000).toISOString(), bootId: BOOT, hostname: 'node-17', kernel: '6.18.44', label: null, durationMs: 140 },
    namespaces, instances, pins, summary: summarize(pins, namespaces.length, instances.length), errors,
  };
}

const o = parseArgs(process.argv.slice(2));
const t0 = performance.now();
const store = openStore(o.db);
let pins = 0;
try {
  const batch = store.db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const doc = snapshotDoc(i, o);
      pins += doc.pins.length;
      saveSnapshot(store, doc);
    }
  });
  for (let i = 0; i < o.snapshots; i += 500) batch(i, Math.min(o.snapshots, i + 500));
} finally {
  store.close();
}
console.log(JSON.stringify({ snapshots: o.snapshots, pins, seconds: Math.round(performance.now() - t0) / 1000, bytes: fs.statSync(o.db).size }));
