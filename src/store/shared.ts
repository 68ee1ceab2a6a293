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
 * The content key of a row: SHA-1 of the JSON text of its item in the document (a pin, a
 * host object), from which every value the row binds derives (its objects, holders and
 * processes rows' too). Equal digests mean equal rows.
 */
export function digestOfText(text: string): string {
  // crypto.hash: Node 20.12+; one call instead of a Hash object per row
  return hashOnce ? hashOnce('sha1', text, 'base64') : crypto.createHash('sha1').update(text).digest('base64');
}

/** The content key of a whole section: of its items' row digests (digestOfText), in order. */
function sectionDigest(rowDigests: readonly string[]): string {
  // digests are base64 (no ','): the joined list is unambiguous
  return `${rowDigests.length} ${digestOfText(rowDigests.join(','))}`;
}

/** Where a snapshot keeps the digest of each shared table's section (migration 6). */
const SECTION_COLUMN: Record<SharedTable, string> = { pins: 'pins_digest', host_objects: 'objects_digest' };

/**
 * Stores the digest of snapshot `sid`'s section of `table` (of its rows' digests). When
 * the latest snapshot before it, `prev`, stored the same, its open rows (exactly prev's:
 * prune never deletes the latest) go on standing for `sid` untouched, none looked at:
 * true. Nothing is then remembered for the next save through this connection.
 */
export function keepSameSection(db: Database.Database, table: SharedTable, sid: number, prev: number | null, rowDigests: readonly string[]): boolean {
  const column = SECTION_COLUMN[table];
  const digest = sectionDigest(rowDigests);
  stmt(db, `UPDATE snapshots SET ${column} = ? WHERE id = ?`).run(digest, sid);
  const last = prev === null ? undefined : (stmt(db, `SELECT ${column} AS d FROM snapshots WHERE id = ?`).get(prev) as { d: string | null } | undefined);
  if (last?.d !== digest) return false;
  memory.get(db)?.delete(table);
  return true;
}

/** A row as a resident save remembers it: the document's value it stores, and the last save that kept or wrote it. */
interface Remembered {
  value: unknown;
  row: number;
  seen: number;
}

/**
 * What the last save through a connection wrote, per table, when its caller asked to
 * remember (a resident watch): every open row by its key, with the value it stores, as of
 * snapshot `sid`. While `sid` is still the latest snapshot those are exactly the open rows,
 * and the next save compares values instead of reading and hashing (src/store/save.ts).
 */
const memory = new WeakMap<Database.Database, Map<SharedTable, { sid: number; rows: Map<string, Remembered> }>>();
/** each save's mark on the remembered rows it keeps or writes */
let saves = 0;

/** The open rows of a save: what the latest snapshot stored, by digest (or, remembered, by key). */
export interface OpenRows {
  table: SharedTable;
  byDigest: Map<string, number[]>;
  /**
   * the last save's rows by key, when they are still the open ones (their digests are then
   * not read); this save marks what it keeps and, remembering, updates it into its own
   */
  remembered?: Map<string, Remembered>;
  /** this save's mark */
  save: number;
  /** remembered rows whose key this save wrote a new row for: closed with the rest */
  replaced: number[];
  /** this save's rows by key, when it remembers them (undefined: it does not, or cannot) */
  next?: Map<string, Remembered>;
}

/**
 * Every open row of `table` (they all stand for the latest snapshot, `prevId`). With
 * `remember`, this save's rows are remembered for the next one through this connection;
 * when the last save remembered its rows and no other snapshot was stored since, those are
 * taken instead of a read.
 */
export function openRows(db: Database.Database, table: SharedTable, prevId: number | null, remember: boolean): OpenRows {
  const last = memory.get(db)?.get(table);
  memory.get(db)?.delete(table); // until this save commits: a failed save leaves no stale memory
  const save = ++saves;
  if (remember && last && last.sid === prevId) return { table, byDigest: new Map(), remembered: last.rows, save, replaced: [], next: last.rows };
  const byDigest = new Map<string, number[]>();
  const rows = stmt(db, `SELECT id, digest FROM ${table} WHERE last_snapshot_id IS NULL`).raw(true).all() as [number, string | null][];
  for (const [id, digest] of rows) {
    const key = digest ?? `\0row ${id}`; // no digest (cannot happen after migration 5): never matched
    const list = byDigest.get(key);
    if (list) list.push(id);
    else byDigest.set(key, [id]);
  }
  return { table, byDigest, save, replaced: [], next: remember ? new Map() : undefined };
}

/** The row the last (remembered) save wrote for `key`, when it stores exactly `value`: it goes on. */
export function reuseRemembered(open: OpenRows, key: string, value: unknown): number | undefined {
  const r = open.remembered?.get(key);
  if (!r || r.seen === open.save || !sameJson(r.value, value)) return undefined;
  // The remembered value stays: it is the same JSON, and keeping the older object lets this
  // scan's copy die young instead of replacing it in the old generation (watch: ~9 ms a scan).
  r.seen = open.save;
  return r.row;
}

/** Note this save's row for `key` (when it remembers; a key seen twice stops remembering). */
export function remember(open: OpenRows, key: string, value: unknown, row: number): void {
  if (!open.next) return;
  const old = open.next.get(key);
  if (old?.seen === open.save) {
    open.next = undefined; // not one row per key: the next save reads digests
    return;
  }
  // the last save's row under this key, not taken (its content changed): it is closed
  if (old && open.next === open.remembered) open.replaced.push(old.row);
  open.next.set(key, { value, row, seen: open.save });
}

/** The snapshot whose rows of `table` this connection remembers (null: none); for tests. */
export function rememberedSnapshot(db: Database.Database, table: SharedTable): number | null {
  return memory.get(db)?.get(table)?.sid ?? null;
}

/** After the save committed: what it remembers for the next one (see openRows). */
export function rememberRows(db: Database.Database, open: OpenRows, sid: number): void {
  if (!open.next) return;
  // (closeRest took the rows this save did not keep out of it)
  let m = memory.get(db);
  if (!m) memory.set(db, (m = new Map()));
  m.set(open.table, { sid, rows: open.next });
}

/**
 * Whether two document values are the same JSON (a field holding undefined counts as
 * absent, as in JSON and in the row's values): what a remembered row is compared with.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    const v = x[k];
    if (v === undefined) continue;
    n++;
    if (!sameJson(v, y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}

/** Take an open row with this content (`digest`), if there is one: it goes on standing for the new snapshot, under `key`. */
export function reuseRow(open: OpenRows, key: string, value: unknown, digest: string): number | undefined {
  const list = open.byDigest.get(digest);
  if (!list) return undefined;
  const id = list.pop()!;
  if (list.length === 0) open.byDigest.delete(digest);
  remember(open, key, value, id);
  return id;
}

/** Close the open rows no content of the new snapshot took: they stood for snapshots up to `lastId`. How many. */
export function closeRest(db: Database.Database, open: OpenRows, lastId: number): number {
  const close = stmt(db, `UPDATE ${open.table} SET last_snapshot_id = ? WHERE id = ?`);
  let n = 0;
  for (const ids of open.byDigest.values()) for (const id of ids) n += close.run(lastId, id).changes;
  open.byDigest.clear();
  const remembered = open.remembered;
  for (const [key, r] of remembered ?? []) {
    if (r.seen === open.save) continue;
    n += close.run(lastId, r.row).changes;
    if (open.next === remembered) remembered!.delete(key); // not remembered for the next save
  }
  for (const row of open.replaced) n += close.run(lastId, row).changes;
  return n;
}

/** Whether `list` is already in the order `compare` gives (only then may its rows be shared). */
export function inOrder<T>(list: readonly T[], compare: (a: T, b: T) => number): boolean {
  for (let i = 1; i < list.length; i++) if (compare(list[i - 1]!, list[i]!) > 0) return false;
  return true;
}
