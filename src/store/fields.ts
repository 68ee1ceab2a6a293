// What the store knows of the model's fields, and the snapshots row shared by the readers.
import type { SnapshotMeta, Status } from '../model.js';
import { PinleakError } from '../errors.js';
import { keys } from './codec.js';

// The fields each model type has columns for. Any other field is kept in an `extra`
// JSON column (see codec.ts), so a field added to model.ts later is never lost.
export const DOC_KEYS = keys('schemaVersion', 'snapshot', 'namespaces', 'instances', 'pins', 'summary', 'errors');
export const META_KEYS = keys('id', 'takenAt', 'bootId', 'hostname', 'kernel', 'label', 'durationMs');
export const NS_KEYS = keys('mntNs', 'reachedVia', 'pids', 'processCount', 'nsfsPaths', 'error', 'container');
export const INSTANCE_KEYS = keys('dev', 'mounts', 'delegation', 'pinCount', 'memlockBytes', 'error');
export const MOUNT_KEYS = keys('mntNs', 'mountId', 'mountPoint', 'root', 'superOptions');
export const OBJECT_KEYS = keys('kind', 'id', 'name', 'type', 'memlockBytes');
export const HOLDER_KEYS = keys('pid', 'startTime', 'comm', 'fds', 'mntNs', 'container', 'mmapped');
export const PIN_KEYS = keys('instance', 'path', 'mountPaths', 'inode', 'createdAt', 'uid', 'gid', 'mode', 'object', 'holders',
  'usedBy', 'status', 'reasons', 'owner', 'creator', 'error', 'stale');
export const OWNER_KEYS = keys('tool', 'persistent', 'pathPid', 'pathPidAlive');
export const CREATOR_KEYS = keys('pid', 'startTime', 'comm', 'alive', 'firstSeenSnapshot', 'source', 'container');
export const ERROR_KEYS = keys('scope', 'message');


export function unknownSnapshot(spec: string): PinleakError {
  return new PinleakError(`unknown snapshot "${spec}": run \`pinleak snapshots\` to list them`);
}

export interface SnapshotRow {
  id: number; schema_version: number; taken_at: string; boot_id: string; hostname: string; kernel: string;
  label: string | null; duration_ms: number; pin_count: number; leak_count: number; leaked_bytes: number;
  summary_json: string; extra: string | null;
  /** 1: pins and objects come back in canonical order (src/store/shared.ts); NULL/0: in row order */
  canonical_order: number | null;
}

export function metaOf(r: SnapshotRow): SnapshotMeta {
  const meta: SnapshotMeta = {
    id: r.id, takenAt: r.taken_at, bootId: r.boot_id, hostname: r.hostname, kernel: r.kernel, label: r.label,
    durationMs: r.duration_ms,
  };
  if (r.extra !== null) {
    const x = JSON.parse(r.extra) as { snapshot?: Record<string, unknown> };
    if (x.snapshot) Object.assign(meta, x.snapshot);
  }
  return meta;
}
