// Small hand-made inputs for the pure analysis functions, and a store per test for the store's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import type { ClassifyContext } from '../../src/analysis/classify.js';
import { objectRefs } from '../../src/analysis/liveness.js';
import type { KernelRef, ScannedPin } from '../../src/model.js';
import { emptyConfig } from '../../src/analysis/config.js';
import { loadCatalog } from '../../src/analysis/owners.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';
import { summarize } from '../../src/analysis/summary.js';

export const BOOT_MS = Date.parse('2026-11-24T00:00:00.000Z');
export const HZ = 100;
/** when the fixtures' scan is taken: two hours after their pins were made */
export const SCAN_TIME = '2026-11-24T12:00:00.000Z';
/** ms since epoch of a start time in ticks */
export const ticksAt = (isoOrMs: string | number) => Math.round(((typeof isoOrMs === 'number' ? isoOrMs : Date.parse(isoOrMs)) - BOOT_MS) / 1000 * HZ);

export function ctx(over: Partial<ClassifyContext> = {}): ClassifyContext {
  return {
    processes: new Map(), holders: new Map(), mmapNotes: new Map(), links: new Map(), refs: [], unexplained: new Map(),
    recorded: new Map(), history: new Map(), bootEpochMs: BOOT_MS, clockTicks: HZ,
    pidMax: 4194304, catalog: loadCatalog(), config: emptyConfig(), staleRuns: new Map(), takenAt: SCAN_TIME, ...over,
  };
}

export function facts(path: string, object: ScannedPin['object'], over: Partial<ScannedPin> = {}): ScannedPin {
  return {
    instance: '0:39', path, mountPaths: [{ mntNs: 4026531841, path: `/sys/fs/bpf${path}` }], inode: 10,
    ctimeMs: Date.parse('2026-11-24T10:00:00.000Z'), uid: 0, gid: 0, mode: 0o600, object, error: null, preload: false, ...over,
  };
}

export const map = (id: number, name = 'm', memlockBytes = 1000) => ({ kind: 'map' as const, id, name, type: 'hash', memlockBytes });

export function doc(pins: Pin[], over: Partial<SnapshotDoc['snapshot']> = {}, mountPoint = '/sys/fs/bpf'): SnapshotDoc {
  return {
    schemaVersion: 1,
    snapshot: { id: 1, takenAt: '2026-11-24T10:00:00.000Z', bootId: 'boot-a', hostname: 'h', kernel: '6.18', label: null, durationMs: 1, ...over },
    namespaces: [],
    instances: [{ dev: pins[0]?.instance ?? '0:39', mounts: [{ mntNs: 1, mountId: 2, mountPoint, root: '/', superOptions: 'rw' }], delegation: null, pinCount: pins.length, memlockBytes: 0, error: null }],
    pins,
    summary: summarize(pins, 1, 1),
    errors: [],
  };
}

type ProgFixture = { id: number; name: string; mapIds: number[] };
type LinkFixture = { id: number; progId: number; defunct: boolean; type: string; target: string | null };

/** A classification context whose references are built from programs, links and extra refs, as a scan builds them. */
export function graphCtx(g: { progs?: ProgFixture[]; links?: LinkFixture[]; refs?: KernelRef[] }, over: Partial<ClassifyContext> = {}): ClassifyContext {
  const links = new Map((g.links ?? []).map((l) => [l.id, l]));
  const refs = [...objectRefs(new Map((g.progs ?? []).map((p) => [p.id, p])), links), ...(g.refs ?? [])];
  return ctx({ links, refs, ...over });
}

/** For each test of the file: a new store in a temporary directory of its own, closed and removed after the test. */
export function storeForEachTest(prefix: string): { readonly dir: string; readonly store: Store } {
  const t = {} as { dir: string; store: Store };
  beforeEach(() => {
    t.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    t.store = openStore(path.join(t.dir, 'p.db'));
  });
  afterEach(() => {
    t.store.close();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });
  return t;
}
