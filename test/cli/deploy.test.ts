// Deployment that works as shipped: the systemd unit verifies and its ExecStart finds
// pinleak where npm installs it, and a database without a configured retention does not
// grow forever. (The Dockerfile's replay is test/cli/dockerfile.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pinleak, tempDb, REPO, scratchForFile } from '../helpers.js';


const scratchDir = scratchForFile('pinleak-deploy-');

// ---- the systemd unit ----

describe('the systemd unit', () => {
  const unit = path.join(REPO, 'deploy/systemd/pinleak.service');
  const execStarts = () => fs.readFileSync(unit, 'utf8').split('\n').filter((l) => l.startsWith('ExecStart=')).map((l) => l.slice('ExecStart='.length).split(' '));

  it('passes systemd-analyze verify (its commands exist)', () => {
    const r = spawnSync('systemd-analyze', ['verify', unit, path.join(REPO, 'deploy/systemd/pinleak.timer'), path.join(REPO, 'deploy/systemd/pinleak-watch.service')], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze is missing: run the tests with `bash .ci/run`').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/pinleak(-watch)?\.(service|timer)/);
  });

  it('runs pinleak from systemd\'s search path, where npm link and npm install -g put it on Debian', () => {
    // systemd runs ExecStart with PATH = its compiled-in search path; npm puts `pinleak` in
    // $(npm prefix -g)/bin: /usr/bin with Debian's nodejs, /usr/local/bin with nodejs.org's
    const systemdPath = execFileSync('systemd-path', ['search-binaries-default'], { encoding: 'utf8' }).trim().split(':');
    expect(systemdPath).toEqual(expect.arrayContaining(['/usr/local/bin', '/usr/bin']));
    const lines = execStarts();
    expect(lines.length).toBeGreaterThan(0);
    for (const argv of lines) expect(argv.slice(0, 2), argv.join(' ')).toEqual(['/usr/bin/env', 'pinleak']);

    // an install the way `npm link` makes it (a link to this checkout), under a scratch prefix
    const prefix = path.join(scratchDir.dir, 'usr');
    execFileSync('npm', ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', REPO], { stdio: 'pipe' });
    expect(fs.realpathSync(path.join(prefix, 'bin', 'pinleak'))).toBe(fs.realpathSync(path.join(REPO, 'dist/pinleak.mjs')));

    const state = path.join(scratchDir.dir, 'state');
    fs.mkdirSync(state);
    // the unit's search path, rooted at the scratch prefix first; the node running these
    // tests stands for the host's node (its better-sqlite3 build is this checkout's)
    const PATH = [path.join(prefix, 'bin'), path.dirname(process.execPath), ...systemdPath].join(':');
    for (const argv of lines) {
      const args = argv.map((a) => a.replace('/var/lib/pinleak/', `${state}/`).replace('/var/lib/node_exporter/textfile_collector/', `${state}/`));
      const r = spawnSync(args[0]!, ['-i', `PATH=${PATH}`, ...args.slice(1)], { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    expect(fs.readFileSync(path.join(state, 'pinleak.prom'), 'utf8')).toMatch(/^pinleak_snapshot_id 1$/m);
  }, 180_000);
});

// ---- retention ----

describe('retention', () => {
  let t: ReturnType<typeof tempDb>;
  beforeAll(() => {
    t = tempDb();
  });
  afterAll(() => t.remove());

  const labels = () => (JSON.parse(pinleak(['snapshots', '--json'], { db: t.db }).stdout) as { snapshots: { label: string }[] }).snapshots.map((s) => s.label);
  const age = (label: string, days: number) => {
    const d = new Database(t.db);
    d.prepare('UPDATE snapshots SET taken_at = ? WHERE label = ?').run(new Date(Date.now() - days * 86_400_000).toISOString(), label);
    d.close();
  };

  it('without one in the config, snapshots older than 30 days go after each stored scan', () => {
    const noConfig = path.join(t.dir, 'none.json');
    fs.writeFileSync(noConfig, '{}');
    for (const l of ['old', 'recent']) expect(pinleak(['scan', '--quiet', '--label', l, '--config', noConfig], { db: t.db }).code).toBe(0);
    age('old', 31);
    age('recent', 29);
    expect(pinleak(['scan', '--quiet', '--label', 'now', '--config', noConfig], { db: t.db }).code).toBe(0);
    expect(labels()).toEqual(['recent', 'now']);
  });

  it('a retention the config sets replaces the default', () => {
    const keepAll = path.join(t.dir, 'keep.json');
    fs.writeFileSync(keepAll, JSON.stringify({ retention: { keep: 100 } }));
    age('recent', 400);
    expect(pinleak(['scan', '--quiet', '--label', 'later', '--config', keepAll], { db: t.db }).code).toBe(0);
    expect(labels()).toEqual(['recent', 'now', 'later']);
  });
});
