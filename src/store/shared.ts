// Rows shared across snapshots (migration 5): a pins or host_objects row stands for every
// snapshot from snapshot_id through last_snapshot_id (NULL: through the latest). A save
// goes on with the open rows whose content it finds again and closes the others, so an
// unchanged pin costs no write; loading snapshot S takes the rows standing for S.
import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import { stmt } from './codec.js';

export type SharedTable = 'pins' | 'host_objects';

/**
 * SQL condition: row `alias` of a shared table stands for snapshot ? (bound twice, the same
 * id). Searched by last_snapshot_id (the unary + keeps SQLite off the snapshot_id index):
 * the rows of a recent snapshot are the open ones and the few closed since, where a search
 * by snapshot_id would read every row older than it.
 */
export const standsFor = (alias: string): string =>
  `+${alias}.snapshot_id <= ? AND (${alias}.last_snapshot_id IS NULL OR ${alias}.last_snapshot_id >= ?)`;

const hashOnce = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'base64') => string }).hash;

/**
 * The content key of a row: SHA-1 of the JSON of every value it binds (its objects,
 * holders and processes rows' too), the values a save computes for the insert anyway.
 * Equal digests mean equal rows.
 */
export function digestOf(value: unknown): string {
  const json = JSON.stringify(value);
  // crypto.hash: Node 20.12+; one call instead of a Hash object per row
  return hashOnce ? hashOnce('sha1', json, 'base64') : crypto.createHash('sha1').update(json).digest('base64');
}

/** The open rows of a save: what the latest snapshot stored, by digest. */
export interface OpenRows {
  table: SharedTable;
  byDigest: Map<string, number[]>;
}

/** Every open row of `table` (they all stand for the latest snapshot). */
export function openRows(db: Database.Database, table: SharedTable): OpenRows {
  const byDigest = new Map<string, number[]>();
  const rows = stmt(db, `SELECT id, digest FROM ${table} WHERE last_snapshot_id IS NULL`).raw(true).all() as [number, string | null][];
  for (const [id, digest] of rows) {
    const key = digest ?? `\0row ${id}`; // no digest (cannot happen after migration 5): never matched
    const list = byDigest.get(key);
    if (list) list.push(id);
    else byDigest.set(key, [id]);
  }
  return { table, byDigest };
}

/** Take an open row with this content, if there is one: it goes on standing for the new snapshot. */
export function reuseRow(open: OpenRows, digest: string): number | undefined {
  const list = open.byDigest.get(digest);
  if (!list) return undefined;
  const id = list.pop();
  if (list.length === 0) open.byDigest.delete(digest);
  return id;
}

/** Close the open rows no content of the new snapshot took: they stood for snapshots up to `lastId`. */
export function closeRest(db: Database.Database, open: OpenRows, lastId: number): void {
  const close = stmt(db, `UPDATE ${open.table} SET last_snapshot_id = ? WHERE id = ?`);
  for (const ids of open.byDigest.values()) for (const id of ids) close.run(lastId, id);
  open.byDigest.clear();
}

/** Whether `list` is already in the order `compare` gives (only then may its rows be shared). */
export function inOrder<T>(list: readonly T[], compare: (a: T, b: T) => number): boolean {
  for (let i = 1; i < list.length; i++) if (compare(list[i - 1]!, list[i]!) > 0) return false;
  return true;
}
