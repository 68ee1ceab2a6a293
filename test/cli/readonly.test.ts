// Reading stored snapshots needs only read access to the database file: pins, leaks,
// mounts, snapshots, diff and export open it read-only (no WAL switch, no migration, no
// write), as another user on a root-owned 0644 file and as root on a read-only mount.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CLI, pinleak, tempDb } from '../helpers.js';
import { APPLICATION_ID, DB_SCHEMA_VERSION } from '../../src/store/schema.js';

const NOBODY = '65534';
const READERS: string[][] = [
  ['snapshots'], ['pins'], ['leaks'], ['mounts'], ['diff'], ['diff', 'latest~1', 'latest'], ['export', 'prometheus'], ['pins', '--json'],
];

let tmp: ReturnType<typeof tempDb>;
let roMount: string | null = null;

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
/** what a read must leave exactly as it was: every file of the directory, with its bytes */
const contents = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]));

function asNobody(args: string[]) {
  const r = spawnSync('setpriv', ['--reuid', NOBODY, '--regid', NOBODY, '--clear-groups', process.execPath, CLI, ...args],
    { encoding: 'utf8', timeout: 60_000, maxBuffer: 1 << 30, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  tmp = tempDb();
  expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
  expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
  // a root-owned database others may read: 0644 in a 0755 directory (pinleak creates it 0600)
  fs.chmodSync(tmp.dir, 0o755);
  fs.chmodSync(tmp.db, 0o644);
  expect(fs.readdirSync(tmp.dir)).toEqual(['pinleak.db']); // the last writer closed: no -wal, no -shm
}, 60_000);

afterAll(() => {
  if (roMount) spawnSync('umount', [roMount]);
  tmp.remove();
});

describe('read-only commands', () => {
  it('work for another user on a root-owned 0644 database, and write nothing next to it', () => {
    const before = contents(tmp.dir);
    for (const args of READERS) {
      const r = asNobody(['--db', tmp.db, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout.length, args.join(' ')).toBeGreaterThan(0);
    }
    expect(contents(tmp.dir)).toEqual(before);
    // a command that writes still says why it cannot
    const scan = asNobody(['--db', tmp.db, 'prune', '--keep', '1']);
    expect(scan.code).toBe(2);
    expect(scan.stderr).toMatch(/^pinleak: cannot (write|open) .*pinleak\.db/);
    expect(contents(tmp.dir)).toEqual(before);
  });

  it('read through the shared memory of a writer that has the database open', () => {
    const writer = new Database(tmp.db); // WAL: creates -wal and -shm, mode 0644 like the file
    try {
      writer.pragma('user_version'); // touch it so the -shm exists
      expect(fs.existsSync(`${tmp.db}-shm`)).toBe(true);
      const r = asNobody(['--db', tmp.db, 'snapshots', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { snapshots: unknown[] }).snapshots).toHaveLength(2);
    } finally {
      writer.close();
    }
  });

  it('work as root on a read-only mount', () => {
    roMount = fs.mkdtempSync(path.join(path.dirname(tmp.dir), 'pinleak-ro-'));
    execFileSync('mount', ['--bind', tmp.dir, roMount]);
    execFileSync('mount', ['-o', 'remount,bind,ro', roMount]);
    const db = path.join(roMount, 'pinleak.db');
    const before = contents(tmp.dir);
    for (const args of READERS) {
      const r = pinleak(args, { db });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const scan = pinleak(['scan'], { db });
    expect(scan.code).toBe(2);
    expect(scan.stderr).toMatch(/read-only/);
    expect(contents(tmp.dir)).toEqual(before);
    execFileSync('umount', [roMount]);
    fs.rmdirSync(roMount);
    roMount = null;
  });

  it('never switch the journal mode: a rollback-journal database stays one, byte for byte', () => {
    const copy = path.join(tmp.dir, 'legacy.db');
    fs.copyFileSync(tmp.db, copy);
    const d = new Database(copy);
    d.pragma('journal_mode = DELETE');
    d.close();
    const before = sha(copy);
    expect(fs.readFileSync(copy)[18]).toBe(1); // header byte 18: 1 rollback journal, 2 WAL
    for (const args of READERS) expect(pinleak(args, { db: copy }).code, args.join(' ')).toBe(0);
    expect(sha(copy)).toBe(before);
    fs.rmSync(copy);
  });

  it('a database that needs a migration is not migrated: the error names the command to run as root', () => {
    const old = path.join(tmp.dir, 'old.db');
    const d = new Database(old);
    d.pragma(`application_id = ${APPLICATION_ID}`); // a pinleak database at schema 0
    d.close();
    const before = sha(old);
    for (const args of [['pins'], ['snapshots'], ['export', 'prometheus']]) {
      const r = pinleak(args, { db: old });
      expect(r.code).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`pinleak: ${old} has database schema 0 and this pinleak reads ${DB_SCHEMA_VERSION}: upgrade it once with \`pinleak --db ${old} scan\` as root`);
    }
    expect(sha(old)).toBe(before);
    fs.rmSync(old);
  });
});
