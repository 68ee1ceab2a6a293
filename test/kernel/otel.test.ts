// The motivating case end to end, and pid reuse: OpenTelemetry Go instrumentation pins
// its maps under <bpffs>/<pid>/ of a bpffs in another mount namespace and exits without
// cleaning up.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Agent } from '../world/world.js';
import { pinleak, pinleakJson } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import type { DiffResult } from '../../src/analysis/diff.js';

const t = worldForFile();

describe('OpenTelemetry Go leak across mount namespaces', () => {
  it('is seen held, then leaked with its creator, owner and memory in scan, leaks and diff', async () => {
    // a "container": a mount namespace of its own with its own bpffs, kept alive by its init
    const container = await t.world.spawnAgent({ unshareMount: true });
    const bpffs = path.join(t.world.dir, 'container-bpf');
    const { dev } = await container.call({ op: 'mountBpffs', path: bpffs });
    // the instrumentation runs in the container's namespace
    const otel: Agent = await t.world.spawnAgent({ joinMountOf: container.pid });
    const ids: number[] = [];
    for (const name of ['alloc_map', 'tracked_spans']) {
      const m = await otel.call({ op: 'map', name, type: 'hash' });
      await otel.call({ op: 'pin', fd: m.fd!, path: path.join(bpffs, String(otel.pid), name) });
      ids.push(m.id!);
    }
    const first = pinleakJson(['scan', '--label', 'before-exit'], { db: t.db.db });
    const held = first.pins.filter((p) => p.instance === dev && p.path.startsWith(`/${otel.pid}/`));
    expect(held.map((p) => p.status)).toEqual(['held', 'held']);
    expect(held.every((p) => p.holders[0]!.pid === otel.pid)).toBe(true);

    await otel.exit(); // a crash: nothing unpinned
    const second = pinleakJson(['scan'], { db: t.db.db });
    const leaked = second.pins.filter((p) => p.instance === dev && p.path.startsWith(`/${otel.pid}/`));
    expect(leaked.map((p) => p.path)).toEqual([`/${otel.pid}/alloc_map`, `/${otel.pid}/tracked_spans`]);
    for (const p of leaked) {
      expect(ids).toContain(p.object!.id);
      expect(p.status).toBe('leaked');
      expect(p.creator).toMatchObject({ pid: otel.pid, alive: false, firstSeenSnapshot: first.snapshot.id });
      expect(p.owner).toEqual({ tool: 'otel-go-instrumentation', persistent: false, pathPid: otel.pid, pathPidAlive: false });
      expect(p.reasons).toContain(`creator ${otel.pid} (${p.creator!.comm}) seen in snapshot ${first.snapshot.id} has exited`);
      expect(p.mountPaths).toEqual([{ mntNs: container.mntNs, path: path.join(bpffs, String(otel.pid), p.path.split('/').pop()!) }]);
    }
    const bytes = leaked.reduce((n, p) => n + p.object!.memlockBytes, 0);
    expect(bytes).toBeGreaterThan(0);

    const d = pinleakJson<DiffResult>(['diff', 'before-exit', 'latest'], { db: t.db.db });
    expect(d.sameBoot).toBe(true);
    expect(d.newlyLeaked.filter((p) => p.instance === dev).map((p) => p.path).sort()).toEqual(leaked.map((p) => p.path));
    expect(d.memlockDelta.leaked).toBeGreaterThanOrEqual(bytes);
    expect(d.statusChanged.filter((c) => c.pin.instance === dev).map((c) => [c.from, c.to])).toEqual([['held', 'leaked'], ['held', 'leaked']]);

    const text = pinleak(['leaks'], { db: t.db.db });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('otel-go-instrumentation');
    expect(text.stdout).toContain(`made by ${otel.pid}`);
    expect(text.stdout).toContain(path.join(bpffs, String(otel.pid), 'alloc_map'));
    const failing = pinleak(['leaks', '--fail-on-leak', '--quiet'], { db: t.db.db });
    expect(failing.code).toBe(1);
  });

  it('a path pid that now belongs to a process started after the pin is still leaked', async () => {
    const bpffs = await t.world.mountBpffs('reuse');
    const maker = await t.world.spawnAgent();
    let sleeper: ReturnType<typeof spawn> | null = null;
    try {
      // Pick a free pid P, pin under <bpffs>/P/, then make the kernel hand P to a new process.
      for (let attempt = 0; attempt < 20 && !sleeper; attempt++) {
        const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
        const target = last + 300 + attempt * 50;
        if (fs.existsSync(`/proc/${target}`)) continue;
        const m = await maker.call({ op: 'map', name: 'alloc_map' });
        const pinPath = path.join(bpffs.path, String(target), 'alloc_map');
        await maker.call({ op: 'pin', fd: m.fd!, path: pinPath });
        await maker.call({ op: 'close', fd: m.fd! });
        await new Promise((r) => setTimeout(r, 100)); // well past the clock tick
        fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(target - 1));
        const child = spawn('sleep', ['60'], { stdio: 'ignore' });
        if (child.pid === target) {
          sleeper = child;
        } else {
          child.kill('SIGKILL');
          fs.unlinkSync(pinPath);
          fs.rmdirSync(path.dirname(pinPath));
        }
      }
      expect(sleeper, 'could not get the kernel to reuse a chosen pid').not.toBeNull();
      const pid = sleeper!.pid!;
      const doc = pinleakJson(['scan'], { db: t.db.db });
      const p = doc.pins.find((x) => x.instance === bpffs.dev && x.path === `/${pid}/alloc_map`)!;
      expect(p.owner).toMatchObject({ tool: 'otel-go-instrumentation', pathPid: pid, pathPidAlive: false });
      expect(p.creator).toMatchObject({ pid, alive: false, startTime: null });
      expect(p.status).toBe('leaked');
    } finally {
      if (sleeper?.pid) sleeper.kill('SIGKILL');
    }
  });
});
