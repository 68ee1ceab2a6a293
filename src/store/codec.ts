// Column encodings shared by the store modules, and a per-connection statement cache.
import type Database from 'better-sqlite3';

const cache = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/** A prepared statement, prepared once per connection and reused. */
export function stmt(db: Database.Database, sql: string): Database.Statement {
  let m = cache.get(db);
  if (!m) cache.set(db, (m = new Map()));
  let s = m.get(sql);
  if (!s) m.set(sql, (s = db.prepare(sql)));
  return s;
}

/** undefined (an absent field) -> NULL; JSON otherwise (null -> 'null'). */
export function toJson(v: unknown): string | null {
  return v === undefined ? null : JSON.stringify(v);
}

/** Inverse of toJson: NULL -> undefined (absent). */
export function fromJson<T>(s: string | null): T | undefined {
  return s === null ? undefined : (JSON.parse(s) as T);
}

/** SQLite has no booleans: 1/0, NULL for null/undefined. */
export function toBool(v: boolean | null | undefined): number | null {
  return v === null || v === undefined ? null : v ? 1 : 0;
}

export function fromBool(v: number | null): boolean | null {
  return v === null ? null : v !== 0;
}

/** undefined -> null, for binding. */
export function nul<T>(v: T | undefined): T | null {
  return v === undefined ? null : v;
}

/**
 * Fields of `o` this version of the store has no column for (added to the model later):
 * kept as JSON so nothing is silently lost. undefined values are dropped, as JSON would.
 */
export function extrasOf(o: object, known: ReadonlySet<string>): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(o)) {
    if (known.has(k)) continue;
    const v = (o as Record<string, unknown>)[k];
    if (v === undefined) continue;
    (out ??= {})[k] = v;
  }
  return out;
}

/** Fold the extras of nested objects (stored in columns) under their field name. */
export function extraJson(top: Record<string, unknown> | undefined, nested?: Record<string, Record<string, unknown> | undefined>): string | null {
  let out = top;
  if (nested) {
    for (const [k, v] of Object.entries(nested)) if (v) (out ??= {})[k] = v;
  }
  return out ? JSON.stringify(out) : null;
}

/** Put stored extras back on `target`; keys in `nested` are merged into that sub-object. */
export function applyExtra(target: object, extra: string | null, nested: readonly string[] = []): void {
  if (extra === null) return;
  const t = target as Record<string, unknown>;
  for (const [k, v] of Object.entries(JSON.parse(extra) as Record<string, unknown>)) {
    const sub = t[k];
    if (nested.includes(k) && sub && typeof sub === 'object' && v && typeof v === 'object') Object.assign(sub, v);
    else t[k] = v;
  }
}

export function keys(...names: string[]): ReadonlySet<string> {
  return new Set(names);
}
