// Every error a user can meet: one `pinleak: ...` line on stderr, exit 2, no stack trace,
// and nothing stored is changed.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { CLI, pinleak, tempDb } from '../helpers.js';

let tmp: ReturnType<typeof tempDb>;
beforeEach(() => {
  tmp = tempDb();
});
afterEach(() => tmp.remove());

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function expectOneLineError(r: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^pinleak: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('errors', () => {
  it('a corrupt database is refused and left byte-for-byte untouched', () => {
    fs.writeFileSync(tmp.db, crypto.randomBytes(8192));
    const before = sha(tmp.db);
    for (const args of [['snapshots'], ['pins'], ['scan'], ['scan', '--no-store']]) {
      const r = pinleak(args, { db: tmp.db });
      expectOneLineError(r, new RegExp(tmp.db.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
      expect(sha(tmp.db)).toBe(before);
    }
    expect(fs.readdirSync(tmp.dir)).toEqual(['pinleak.db']);
  });

  it('a database of a newer schema is refused and untouched', () => {
    expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
    const d = new Database(tmp.db);
    d.pragma('wal_checkpoint(TRUNCATE)');
    d.pragma('user_version = 99');
    d.close();
    const before = sha(tmp.db);
    expectOneLineError(pinleak(['snapshots'], { db: tmp.db }), /newer/);
    expectOneLineError(pinleak(['scan'], { db: tmp.db }), /newer/);
    expect(sha(tmp.db)).toBe(before);
  });

  it('a missing database says to scan first', () => {
    expectOneLineError(pinleak(['pins'], { db: tmp.db }), /pinleak scan/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('an unknown snapshot names it', () => {
    expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
    expectOneLineError(pinleak(['pins', 'nosuchlabel'], { db: tmp.db }), /unknown snapshot "nosuchlabel"/);
    expectOneLineError(pinleak(['mounts', 'latest~5'], { db: tmp.db }), /unknown snapshot "latest~5"/);
    expectOneLineError(pinleak(['diff', '999', 'latest'], { db: tmp.db }), /unknown snapshot "999"/);
  });

  it('an unknown flag or command, or a bad value', () => {
    expectOneLineError(pinleak(['scan', '--frobnicate'], { db: tmp.db }), /Unknown argument: frobnicate/);
    expectOneLineError(pinleak(['explode'], { db: tmp.db }), /^pinleak: unknown command "explode": pinleak --help lists the commands$/);
    expectOneLineError(pinleak([], { db: tmp.db }), /name a command/);
    expectOneLineError(pinleak(['pins', '--status', 'leakd'], { db: tmp.db }), /--status leakd: must be one of/);
    expectOneLineError(pinleak(['gate'], { db: tmp.db }), /Missing required argument: baseline/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('messages echo what the user typed, and name a mistyped command as a command', () => {
    expectOneLineError(pinleak(['scna'], { db: tmp.db }), /^pinleak: unknown command "scna" \(did you mean scan\?\): pinleak --help lists the commands$/);
    expectOneLineError(pinleak(['--quiet', 'leak'], { db: tmp.db }), /^pinleak: unknown command "leak" \(did you mean leaks\?\)/);
    expectOneLineError(pinleak(['pins', '--path', '/app/[z-a]'], { db: tmp.db }), /^pinleak: --path \/app\/\[z-a\]: "\[z-a\]" is not a valid character class \(a range goes up, as in \[a-z\]\)$/);
    expectOneLineError(pinleak(['leaks', '--path', 'a//b'], { db: tmp.db }), /^pinleak: --path a\/\/b: it has an empty path component/);
    expectOneLineError(pinleak(['run', '--interval', 'abc', '--', 'true'], { db: tmp.db }), /^pinleak: --interval abc: must be a whole number >= 1$/);
    expectOneLineError(pinleak(['gate', '--baseline', 'x', '--max-new-leaks', '-1'], { db: tmp.db }), /^pinleak: --max-new-leaks -1: must be a whole number >= 0$/);
    expectOneLineError(pinleak(['gate', '--baseline', 'x', '--max-leaked-bytes', '1k'], { db: tmp.db }), /^pinleak: --max-leaked-bytes 1k: must be a whole number >= 0$/);
    expectOneLineError(pinleak(['prune', '--keep', '1.5'], { db: tmp.db }), /^pinleak: --keep 1\.5: must be a whole number >= 0$/);
    // clean names the statuses it takes, not all six
    expectOneLineError(pinleak(['clean', '--status', 'bogus'], { db: tmp.db }), /^pinleak: --status bogus: must be one of leaked, orphaned, persistent$/);
    expectOneLineError(pinleak(['clean', '--status', 'held'], { db: tmp.db }), /^pinleak: clean never removes held pins/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('run without -- says where the command goes', () => {
    expectOneLineError(pinleak(['run', 'true'], { db: tmp.db }), /^pinleak: run takes the command after --: pinleak run -- true$/);
    expectOneLineError(pinleak(['run', '--interval', '50', 'ls', '-l'], { db: tmp.db }), /^pinleak: run takes the command after --: pinleak run -- ls -l$/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('a malformed --config fails every command, also those that do not use it', () => {
    expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
    const cfg = path.join(tmp.dir, 'config.json');
    fs.writeFileSync(cfg, '{ "ignore": [ }');
    const before = sha(tmp.db);
    for (const args of [['pins'], ['leaks'], ['mounts'], ['snapshots'], ['diff', 'latest', 'latest'], ['prune', '--keep', '1'], ['export', 'prometheus'], ['demo']]) {
      expectOneLineError(pinleak([...args, '--config', cfg], { db: tmp.db }), /^pinleak: config .*config\.json: not valid JSON/);
    }
    expect(sha(tmp.db)).toBe(before);
    // a valid one that leaves out optional keys (owners[].persistent among them) is fine
    fs.writeFileSync(cfg, JSON.stringify({ owners: [{ tool: 'mine', paths: ['mine/**'] }] }));
    expect(pinleak(['snapshots', '--config', cfg], { db: tmp.db }).code).toBe(0);
  });

  it('a label that would read as a snapshot id, latest~N or a file is refused', () => {
    for (const label of ['latest', 'latest~2', '42', 'a/b', 'x.json', ' ']) {
      expectOneLineError(pinleak(['scan', '--label', label], { db: tmp.db }), /--label .*a label must not be/);
    }
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('a bad config file names the file and the field', () => {
    const cfg = path.join(tmp.dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ignore: [{ path: 7 }] }));
    expectOneLineError(pinleak(['scan', '--config', cfg], { db: tmp.db }), /config .*config\.json: ignore\[0\]\.path/);
    fs.writeFileSync(cfg, '{ "ignore": [ }');
    expectOneLineError(pinleak(['scan', '--config', cfg], { db: tmp.db }), /not valid JSON/);
    expectOneLineError(pinleak(['scan', '--config', path.join(tmp.dir, 'absent.json')], { db: tmp.db }), /absent\.json/);
  });

  it('without privileges, scanning says which capabilities are missing', () => {
    // root with an empty bounding set: every capability gone after exec
    const r = spawnSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', process.execPath, CLI, '--db', tmp.db, 'scan'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    expectOneLineError({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, /needs root: missing CAP_SYS_ADMIN, CAP_BPF, CAP_SYS_PTRACE/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });

  it('a command run cannot start stores nothing: no run:before snapshot becomes latest', () => {
    expect(pinleak(['scan', '--quiet', '--label', 'first'], { db: tmp.db }).code).toBe(0);
    const notExecutable = path.join(tmp.dir, 'not-executable.sh');
    fs.writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    for (const [cmd, why] of [['/nonexistent/cmd', 'command not found'], ['no-such-command-' + process.pid, 'command not found'], [notExecutable, 'permission denied']]) {
      expectOneLineError(pinleak(['run', '--', cmd!, '--flag'], { db: tmp.db }), new RegExp(`^pinleak: cannot run ${cmd!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${why}`));
    }
    const list = JSON.parse(pinleak(['snapshots', '--json'], { db: tmp.db }).stdout) as { snapshots: { label: string | null }[] };
    expect(list.snapshots.map((s) => s.label)).toEqual(['first']);
  });

  it('one sample is "1 sample"', () => {
    // the first sample is taken at once; the next would come after 100 s, long after `true` exited
    const r = pinleak(['run', '--no-record', '--interval', '100000', '--', 'true'], { db: tmp.db });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^true exited with code 0 \(1 sample of its process tree\)$/m);
    // with the pin recorder (the default here): what it saw, counted the same way
    const recorded = pinleak(['run', '--', 'true'], { db: tmp.db });
    expect(recorded.stdout).toMatch(/^true exited with code 0 \(the pin recorder saw its process tree pin 0 times\)$/m);
  });

  it('an internal error is one line too, with the stack only under --debug', () => {
    // a stored summary that is not JSON: nothing a user did, so it is pinleak's bug (the internal-error path)
    expect(pinleak(['scan', '--quiet'], { db: tmp.db }).code).toBe(0);
    const d = new Database(tmp.db);
    d.prepare("UPDATE snapshots SET summary_json = '{not json'").run();
    d.close();
    const r = pinleak(['pins'], { db: tmp.db });
    expectOneLineError(r, /^pinleak: internal error: .*\(run with --debug for details\)$/);
    const debug = pinleak(['pins', '--debug'], { db: tmp.db });
    expect(debug.code).toBe(2);
    expect(debug.stdout).toBe('');
    const [first, ...stack] = debug.stderr.trimEnd().split('\n');
    expect(first).toMatch(/^pinleak: internal error: /);
    expect(first).not.toMatch(/--debug/);
    expect(stack.length).toBeGreaterThan(0);
    expect(stack.every((l) => /^\s+at |^SyntaxError|^\S+Error/.test(l)), debug.stderr).toBe(true);
  });

  it('a directory where the database file should be is one line naming it', () => {
    fs.mkdirSync(tmp.db);
    const r = pinleak(['snapshots'], { db: tmp.db });
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^pinleak: /);
  });
});
