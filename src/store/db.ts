// Opening the database: refuse (and never touch) a file that is not ours, corrupt,
// unreadable or of a newer schema; otherwise set the pragmas and migrate forward.
import fs from 'node:fs';
import nodePath from 'node:path';
import Database from 'better-sqlite3';
import { PinleakError } from '../errors.js';
import { APPLICATION_ID, DB_SCHEMA_VERSION, MIGRATIONS } from './schema.js';

export interface Store {
  db: Database.Database;
  path: string;
  /** read without locks (a read-only directory with no -shm to share): a concurrent writer can tear a read */
  unlocked?: boolean;
  close(): void;
}

export interface OpenOptions {
  /**
   * 'write' (default): WAL, migrations, writes. 'read': a read-only connection that never
   * writes, switches the journal mode or migrates, so that any user who can read the file
   * can use it, on read-only media too.
   */
  access?: 'read' | 'write';
  /** Create the database (and its directory) when missing ('write' only). Default true. */
  create?: boolean;
}

/** How long a connection waits for another one's write lock (a cron scan vs a person's scan). */
export const BUSY_TIMEOUT_MS = 10_000;

const MOVE_ASIDE = 'move it aside or pass --db PATH';

function notOurs(path: string, why: string): PinleakError {
  return new PinleakError(`${path} is not a pinleak database (${why}); ${MOVE_ASIDE}`);
}

function newer(path: string, version: number): PinleakError {
  return new PinleakError(
    `${path} was written by a newer pinleak (schema ${version}, this one knows ${DB_SCHEMA_VERSION}); upgrade pinleak or pass --db PATH`,
  );
}

function fsError(path: string, err: NodeJS.ErrnoException, what: string): PinleakError {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return new PinleakError(`cannot ${what} ${path} (permission denied); run pinleak as root or pass --db PATH`);
    case 'EISDIR':
      return new PinleakError(`${path} is a directory, not a database; pass --db PATH`);
    case 'ENOTDIR':
      return new PinleakError(`cannot ${what} ${path} (a parent is not a directory); pass --db PATH`);
    case 'EROFS':
      return new PinleakError(`cannot ${what} ${path} (read-only file system); pass --db PATH`);
    default:
      return new PinleakError(`cannot ${what} ${path} (${err.code ?? err.message}); pass --db PATH`);
  }
}

/** A SQLite error a user can act on, as a PinleakError naming the file; anything else unchanged. */
export function sqliteError(path: string, err: unknown, unlocked = false): unknown {
  if (err instanceof PinleakError) return err;
  const code = (err as { code?: string }).code ?? '';
  // without locks, a scan writing at the same moment looks like corruption: it is not
  if (unlocked && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'))) {
    return new PinleakError(`${path} changed while it was read (read without locks: its directory is read-only); try again`);
  }
  if (code === 'SQLITE_NOTADB') return notOurs(path, 'file is not a database');
  if (code.startsWith('SQLITE_CORRUPT')) return new PinleakError(`${path} is corrupt (${(err as Error).message}); ${MOVE_ASIDE}`);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return new PinleakError(`${path} is locked by another process (waited ${BUSY_TIMEOUT_MS / 1000} s); try again`);
  if (code.startsWith('SQLITE_READONLY')) return new PinleakError(`cannot write ${path} (read-only); run pinleak as root or pass --db PATH`);
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_AUTH'))
    return new PinleakError(`cannot open ${path} (${(err as Error).message}); run pinleak as root or pass --db PATH`);
  if (code.startsWith('SQLITE_IOERR')) return new PinleakError(`cannot read ${path} (${(err as Error).message}); pass --db PATH`);
  if (code === 'SQLITE_FULL') return new PinleakError(`cannot write ${path} (disk full); free space, run \`pinleak prune\`, or pass --db PATH`);
  return err;
}

/** Run `fn` on the store, turning corruption, lock time-outs and the like into a PinleakError. */
export function guard<T>(store: Store, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw sqliteError(store.path, err, store.unlocked);
  }
}

/**
 * `fn` in one write transaction (BEGIN IMMEDIATE): all of it or none of it. A database
 * another process keeps locked is a PinleakError saying so; what `fn` throws is unchanged.
 */
export function writeTransaction(store: Store, fn: () => void): void {
  guard(store, () => store.db.transaction(fn).immediate());
}

/** `fn` with guard() around every call. */
export function guarded<A extends unknown[], R>(fn: (store: Store, ...args: A) => R): (store: Store, ...args: A) => R {
  return (store, ...args) => guard(store, () => fn(store, ...args));
}

/**
 * PRAGMA quick_check reads every page: about 1.5-2 ms per MB on a 2-core VM. Up to this
 * size the whole file is checked on every open; a larger file (one 10,000-pin snapshot is
 * 8.6 MB, and with shared rows such a database stays near that size for weeks) gets the
 * header, schema and snapshots table checked only, so that a cron scan does not pay 15 ms
 * for it on every run. Corruption elsewhere still surfaces, as a PinleakError from
 * guard(), when a query reads the bad page.
 */
export const FULL_CHECK_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Cheap first look at the 100-byte SQLite header, with plain fs calls so that nothing
 * (not even a -wal/-shm file) is created next to a file that is not ours. In WAL mode
 * the main file's header can be stale, but never in a way that makes a good database
 * look bad: user_version only grows and application_id is only ever set to ours.
 * Returns the file size.
 */
function checkHeader(path: string): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw fsError(path, err as NodeJS.ErrnoException, 'read');
  }
  try {
    const size = fs.fstatSync(fd).size;
    // A 0-byte file is an empty database to SQLite too (e.g. `touch`ed, or created by a
    // concurrent pinleak that has not written yet): it holds nothing to lose, so it is
    // initialised as a new database. Any other content must be a valid header.
    if (size === 0) return 0;
    const buf = Buffer.alloc(100);
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, 100, 0);
    } catch (err) {
      throw fsError(path, err as NodeJS.ErrnoException, 'read');
    }
    if (n < 100 || buf.toString('latin1', 0, 16) !== 'SQLite format 3\0') throw notOurs(path, 'file is not a database');
    const userVersion = buf.readInt32BE(60);
    const appId = buf.readInt32BE(68);
    if (appId !== 0 && appId !== APPLICATION_ID) throw notOurs(path, `application_id 0x${(appId >>> 0).toString(16)}`);
    if (appId === APPLICATION_ID && userVersion > DB_SCHEMA_VERSION) throw newer(path, userVersion);
    return size;
  } finally {
    fs.closeSync(fd);
  }
}

function userTables(db: Database.Database): string[] {
  return (db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as { name: string }[])
    .map((r) => r.name);
}

/** Why `db` cannot be used by this pinleak, or null when it can (version <= ours, ours or empty). */
function incompatibility(path: string, db: Database.Database): PinleakError | null {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (appId !== 0 && appId !== APPLICATION_ID) return notOurs(path, `application_id 0x${(appId >>> 0).toString(16)}`);
  if (appId === 0) {
    const tables = userTables(db);
    if (version !== 0 || tables.length > 0) {
      return notOurs(path, tables.length ? `it holds other tables: ${tables.slice(0, 3).join(', ')}${tables.length > 3 ? ', …' : ''}` : `user_version ${version}`);
    }
    return null;
  }
  if (version > DB_SCHEMA_VERSION) return newer(path, version);
  return null;
}

let urisEnabled = false;

/**
 * better-sqlite3 reads SQLITE_USE_URI once, when its addon loads (at the first
 * connection): set it for that moment only, so `file:...?immutable=1` can be opened.
 * pinleak's own paths are made absolute, so no --db is ever read as a URI.
 */
function enableUris(): void {
  if (urisEnabled) return;
  const before = process.env.SQLITE_USE_URI;
  process.env.SQLITE_USE_URI = '1';
  try {
    new Database(':memory:').close();
  } finally {
    if (before === undefined) delete process.env.SQLITE_USE_URI;
    else process.env.SQLITE_USE_URI = before;
  }
  urisEnabled = true;
}

/**
 * A read-only connection. `unlocked`: opened immutable, for a WAL database whose
 * directory does not let this user create the -shm file readers share (another user's
 * directory, a read-only mount). No -shm there means no connection has the file open.
 */
function connectReadOnly(path: string, unlocked: boolean): Database.Database {
  enableUris();
  const abs = nodePath.resolve(path);
  const name = unlocked ? `file:${abs.split('/').map(encodeURIComponent).join('/')}?immutable=1` : abs;
  try {
    return new Database(name, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw sqliteError(path, err);
  }
}

/** A read-only connection could not set up its shared memory (-shm) next to the file. */
const cannotShare = (err: unknown): boolean => /^SQLITE_(READONLY|CANTOPEN)/.test((err as { code?: string }).code ?? '');

/**
 * The authoritative check, on a read-only connection: the schema version (WAL-aware)
 * and PRAGMA quick_check. A read-only connection never writes the main file (it may
 * create the usual -wal/-shm files of a WAL database, which SQLite shares between
 * connections, so they are left alone).
 */
function inspect(path: string, db: Database.Database, size: number, unlocked: boolean): void {
  try {
    const bad = incompatibility(path, db);
    if (bad) throw bad;
    // a foreign or empty database has returned above; so the snapshots table exists when version > 0
    const limited = size > FULL_CHECK_MAX_BYTES && (db.pragma('user_version', { simple: true }) as number) > 0;
    const rows = db.pragma(limited ? 'quick_check(snapshots)' : 'quick_check(1)') as { quick_check: string }[];
    const result = rows[0]?.quick_check ?? 'no result';
    if (result !== 'ok') throw new PinleakError(`${path} is corrupt (quick_check: ${result}); ${MOVE_ASIDE}`);
  } catch (err) {
    throw sqliteError(path, err, unlocked);
  }
}

function checkReadOnly(path: string, size: number): void {
  const db = connectReadOnly(path, false);
  try {
    inspect(path, db, size, false);
  } finally {
    db.close();
  }
}

/** A store for reading only: checked like any other, but never written, migrated or switched to WAL. */
function openForReading(path: string, size: number): Store {
  if (size === 0) throw new PinleakError(`${path} holds no snapshot yet: run \`pinleak scan\` first, or pass --db PATH`);
  let unlocked = false;
  let db = connectReadOnly(path, unlocked);
  try {
    try {
      db.pragma('user_version', { simple: true });
    } catch (err) {
      if (!cannotShare(err)) throw sqliteError(path, err);
      db.close();
      unlocked = true;
      db = connectReadOnly(path, unlocked);
    }
    inspect(path, db, size, unlocked);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version < DB_SCHEMA_VERSION) {
      throw new PinleakError(`${path} has database schema ${version} and this pinleak reads ${DB_SCHEMA_VERSION}: upgrade it once with \`pinleak --db ${path} scan\` as root (reading never writes it)`);
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return storeOf(db, path, unlocked);
}

function storeOf(db: Database.Database, path: string, unlocked: boolean): Store {
  let closed = false;
  return {
    db,
    path,
    unlocked,
    close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

function migrate(path: string, db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current === DB_SCHEMA_VERSION && db.pragma('application_id', { simple: true }) === APPLICATION_ID) return;
  // Under the write lock: a concurrent pinleak may have migrated in the meantime.
  db.transaction(() => {
    const bad = incompatibility(path, db);
    if (bad) throw bad;
    const from = db.pragma('user_version', { simple: true }) as number;
    for (let v = from; v < DB_SCHEMA_VERSION; v++) MIGRATIONS[v]!(db);
    db.pragma(`user_version = ${DB_SCHEMA_VERSION}`);
  }).immediate();
}

function configure(path: string, db: Database.Database): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('foreign_keys = ON');
  // auto_vacuum only takes effect when set before the first table exists, and must be
  // set before journal_mode=WAL writes the first page of a new database.
  if ((db.pragma('user_version', { simple: true }) as number) === 0 && userTables(db).length === 0) {
    db.pragma('auto_vacuum = INCREMENTAL');
  }
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') throw new PinleakError(`cannot use ${path} (journal_mode stays ${String(mode)}); pass --db PATH on a local file system`);
  db.pragma('synchronous = NORMAL'); // WAL + NORMAL: atomic and consistent; a power cut may lose the last scan only
  db.pragma('journal_size_limit = 16777216');
  migrate(path, db);
}

/**
 * mkdir -p, each directory it creates 0700 (existing ones are left as they are). Not
 * fs.mkdirSync({ recursive: true }): on a file system where mkdir fails with ENOENT
 * under an existing parent (/proc, /sys) Node's version loops forever.
 */
function mkdirp(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; ) {
    try {
      fs.statSync(d);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    missing.push(d);
    const parent = nodePath.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

export function openStore(path: string, opts: OpenOptions = {}): Store {
  enableUris();
  const reading = opts.access === 'read';
  const create = !reading && (opts.create ?? true);
  let exists = true;
  try {
    fs.statSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOENT') throw fsError(path, e, 'read');
    exists = false;
  }
  if (!exists) {
    if (!create) throw new PinleakError(`no database at ${path}: run \`pinleak scan\` first, or pass --db PATH`);
    const dir = nodePath.dirname(nodePath.resolve(path));
    try {
      mkdirp(dir);
    } catch (err) {
      throw fsError(dir, err as NodeJS.ErrnoException, 'create the directory');
    }
    try {
      fs.closeSync(fs.openSync(path, 'wx', 0o600)); // SQLite gives -wal/-shm the same mode
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'EEXIST') throw fsError(path, e, 'create');
      // a concurrent pinleak created it first: check it like any existing file
    }
  }

  const size = checkHeader(path);
  if (reading) return openForReading(path, size);
  // the file and its directory (SQLite puts -wal and -shm beside it): say which cannot be written, and why
  for (const f of [path, nodePath.dirname(nodePath.resolve(path))]) {
    try {
      fs.accessSync(f, fs.constants.W_OK);
    } catch (err) {
      throw fsError(f, err as NodeJS.ErrnoException, 'write');
    }
  }
  if (size > 0) checkReadOnly(path, size);

  let db: Database.Database;
  try {
    db = new Database(nodePath.resolve(path), { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw sqliteError(path, err);
  }
  try {
    configure(path, db);
  } catch (err) {
    db.close();
    throw sqliteError(path, err);
  }
  return storeOf(db, path, false);
}
