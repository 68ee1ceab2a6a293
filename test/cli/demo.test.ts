// `pinleak demo` end to end, and interrupted: it must leave no mount, pin, process or
// directory behind.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { CLI, start } from '../helpers.js';

const demoDirs = () => new Set(fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('pinleak-demo-')));
/** pids of demo actors still running (looked up to check, never to kill) */
const actors = () => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
  try {
    return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('dist/demo/actor.js');
  } catch {
    return false;
  }
});
const demoMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('pinleak-demo-'));

function expectNothingLeft(dirsBefore: Set<string>): void {
  expect([...demoDirs()].filter((d) => !dirsBefore.has(d))).toEqual([]);
  expect(actors()).toEqual([]);
  expect(demoMounts()).toEqual([]);
}

describe('demo', () => {
  it('walks through scan, leaks, diff and clean, and leaves nothing behind', () => {
    const before = demoDirs();
    const started = performance.now();
    const r = spawnSync(process.execPath, [CLI, 'demo'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
    const seconds = (performance.now() - started) / 1000;
    expect(r.status, r.stderr).toBe(0);
    // docs/demo.md says how long it takes on an idle machine: not an overstatement (a busy
    // host, with other suites running, makes it slower, so no upper bound is checked)
    const claimed = Number(/takes about (\d+) seconds/.exec(fs.readFileSync(new URL('../../docs/demo.md', import.meta.url), 'utf8'))?.[1]);
    expect(seconds, `docs/demo.md says about ${claimed} s`).toBeGreaterThan(claimed / 3);
    for (const s of ['1. A container with its own bpffs', '$ pinleak scan', '$ pinleak leaks', '$ pinleak diff before latest', '$ pinleak clean', 'unpinned 2 pins', 'done: nothing of the demo is left']) {
      expect(r.stdout).toContain(s);
    }
    expect(r.stdout).toMatch(/creator \d+ \(otel-go-instru\) seen in snapshot 1 has exited/);
    expect(r.stdout).toMatch(/2 newly leaked/);
    expectNothingLeft(before);
  });

  it('cleans up when interrupted with Ctrl-C', async () => {
    const before = demoDirs();
    const { child, ended } = start(process.execPath, [CLI, 'demo'], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve) => child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('2. Scan the host')) resolve();
    }));
    const ours = actors();
    expect(ours.length).toBeGreaterThan(0); // the world exists at this point
    child.kill('SIGINT');
    expect((await ended).code).toBe(130);
    expect(err).toMatch(/demo interrupted/);
    // actors end when their stdin closes: wait for exactly that, not a fixed time
    const deadline = Date.now() + 10_000;
    while (actors().some((pid) => ours.includes(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expectNothingLeft(before);
  });
});
