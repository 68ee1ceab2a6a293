// Pin records and watch sessions (issue 11): who pinned what, as the recorder saw it.
import { objectKey, type Container } from '../model.js';
import { guarded, type Store } from './db.js';
import { fromJson, stmt, toJson } from './codec.js';
import { evidenceRows } from './history.js';
import type { ObjectRef } from '../model.js';
import type { PinRecord } from '../kernel/recorder.js';

/** One BPF_OBJ_PIN as stored: the kernel's record (PinRecord), resolved: time on the wall clock, cgroup by path. */
export type StoredPinRecord = Omit<PinRecord, 'bootNs' | 'ancestors' | 'kind'> & {
  at: string;
  kind: string;
  cgroupPath: string | null;
  container: Container | null;
  sessionId: number | null;
};

export interface WatchSession {
  id: number;
  pid: number;
  startTime: number;
  startedAt: string;
  coveredUntil: string;
  endedAt: string | null;
  recording: boolean;
  note: string | null;
  drops: number;
}

/** One transaction for a drain's records. */
export const savePinRecords = guarded(function savePinRecords(store: Store, bootId: string, rows: readonly StoredPinRecord[]): void {
  if (rows.length === 0) return;
  const ins = stmt(store.db, `INSERT INTO pin_records (boot_id, at, kind, obj_id, ret, pid, start_time, comm, ppid,
      parent_start_time, cgroup_id, cgroup_path, container_json, mnt_ns, path, path_truncated, bpf_fd, file_flags, path_fd, session_id)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`);
  store.db.transaction(() => {
    for (const r of rows) {
      ins.run(bootId, r.at, r.kind, r.id, r.ret, r.pid, r.startTime, r.comm, r.ppid, r.parentStartTime, BigInt.asIntN(64, r.cgroupId),
        r.cgroupPath, toJson(r.container), r.mntNs, r.path, r.pathTruncated ? 1 : 0, r.bpfFd, r.fileFlags, r.pathFd, r.sessionId);
    }
  }).immediate();
});

interface Row {
  at: string; kind: string; obj_id: number; ret: number; pid: number; start_time: number; comm: string | null; ppid: number | null;
  parent_start_time: number | null; cgroup_id: string | null; cgroup_path: string | null; container_json: string | null;
  mnt_ns: number | null; path: string; path_truncated: number; bpf_fd: number | null; file_flags: number | null; path_fd: number | null;
  session_id: number | null;
}

// cgroup_id as text: a 64-bit id would lose its low bits as a JS number
const columns = (r: string) => `${r}.at, ${r}.kind, ${r}.obj_id, ${r}.ret, ${r}.pid, ${r}.start_time, ${r}.comm, ${r}.ppid,
  ${r}.parent_start_time, CAST(${r}.cgroup_id AS TEXT) AS cgroup_id, ${r}.cgroup_path, ${r}.container_json, ${r}.mnt_ns, ${r}.path,
  ${r}.path_truncated, ${r}.bpf_fd, ${r}.file_flags, ${r}.path_fd, ${r}.session_id`;

function fromRow(r: Row): StoredPinRecord {
  return {
    at: r.at, kind: r.kind, id: r.obj_id, ret: r.ret, pid: r.pid, startTime: r.start_time, comm: r.comm ?? '', ppid: r.ppid ?? 0,
    parentStartTime: r.parent_start_time ?? 0, cgroupId: BigInt.asUintN(64, BigInt(r.cgroup_id ?? 0)), cgroupPath: r.cgroup_path,
    container: fromJson<Container | null>(r.container_json) ?? null, mntNs: r.mnt_ns ?? 0, path: r.path,
    pathTruncated: r.path_truncated !== 0, bpfFd: r.bpf_fd ?? 0, fileFlags: r.file_flags ?? 0, pathFd: r.path_fd ?? 0, sessionId: r.session_id,
  };
}

/** Every successful pin recorded of each object (boot `bootId`), oldest first; objects without are absent. */
export const pinRecordsOf = guarded(function pinRecordsOf(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, StoredPinRecord[]> {
  const out = new Map<string, StoredPinRecord[]>();
  const rows = evidenceRows<Row>(store, 'pin_records', bootId, objects, columns('t'), 't.ret = 0', 't.at, t.id');
  for (const r of rows) {
    const k = objectKey(r.kind, r.obj_id);
    const list = out.get(k);
    if (list) list.push(fromRow(r));
    else out.set(k, [fromRow(r)]);
  }
  return out;
});

/** Every record of boot `bootId` (failed pins too), oldest first; at most `limit`. */
export const listPinRecords = guarded(function listPinRecords(store: Store, bootId: string, limit = 10_000): StoredPinRecord[] {
  return (stmt(store.db, `SELECT ${columns('r')} FROM pin_records AS r WHERE r.boot_id = ? ORDER BY r.at, r.id LIMIT ?`).all(bootId, limit) as Row[]).map(fromRow);
});

/** Records older than `beforeIso` go (retention). */
export const prunePinRecords = guarded(function prunePinRecords(store: Store, beforeIso: string): number {
  return stmt(store.db, 'DELETE FROM pin_records WHERE at < ?').run(beforeIso).changes;
});

export const openWatchSession = guarded(function openWatchSession(
  store: Store, bootId: string, s: { pid: number; startTime: number; startedAt: string; recording: boolean; note: string | null },
): number {
  return Number(stmt(store.db, `INSERT INTO watch_sessions (boot_id, pid, start_time, started_at, covered_until, recording, note)
    VALUES (?,?,?,?,?,?,?)`).run(bootId, s.pid, s.startTime, s.startedAt, s.startedAt, s.recording ? 1 : 0, s.note).lastInsertRowid);
});

/** After a stored drain: pins made before `coveredUntil` are recorded (or counted in `drops`). */
export const coverWatchSession = guarded(function coverWatchSession(store: Store, id: number, coveredUntil: string, drops: number): void {
  stmt(store.db, 'UPDATE watch_sessions SET covered_until = ?, drops = ? WHERE id = ?').run(coveredUntil, drops, id);
});

export const endWatchSession = guarded(function endWatchSession(store: Store, id: number, endedAt: string): void {
  stmt(store.db, 'UPDATE watch_sessions SET ended_at = ? WHERE id = ?').run(endedAt, id);
});

export const watchSessions = guarded(function watchSessions(store: Store, bootId: string): WatchSession[] {
  return (stmt(store.db, `SELECT id, pid, start_time, started_at, covered_until, ended_at, recording, note, drops
    FROM watch_sessions WHERE boot_id = ? ORDER BY id`).all(bootId) as {
    id: number; pid: number; start_time: number; started_at: string; covered_until: string; ended_at: string | null;
    recording: number; note: string | null; drops: number;
  }[]).map((r) => ({
    id: r.id, pid: r.pid, startTime: r.start_time, startedAt: r.started_at, coveredUntil: r.covered_until, endedAt: r.ended_at,
    recording: r.recording !== 0, note: r.note, drops: r.drops,
  }));
});
