// Every status built for real on the kernel and recognised.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { type World, type Agent, type Mount } from '../world/world.js';
import { pinleakJson } from '../helpers.js';
import { worldForFile, type FileWorld } from '../world/for-file.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';

let world: World;
let db: FileWorld['db'];
let bpffs: Mount;
let agent: Agent;
let doc: SnapshotDoc;
const ids: Record<string, number> = {};

const pin = (p: string): Pin => {
  const found = doc.pins.find((x) => x.instance === bpffs.dev && x.path === p);
  if (!found) throw new Error(`no pin ${p}`);
  return found;
};

worldForFile(async (t) => {
  world = t.world;
  db = t.db;
  bpffs = await world.mountBpffs('st');
  const at = (p: string) => path.join(bpffs.path, p);
  agent = await world.spawnAgent();

  // a map used by a held program
  const m1 = await agent.call({ op: 'map', name: 'used_by_held', type: 'array' });
  ids.m1 = m1.id!;
  await agent.call({ op: 'pin', fd: m1.fd!, path: at('used_by_held') });
  const p1 = await agent.call({ op: 'prog', name: 'held_prog', mapFd: m1.fd! });
  ids.p1 = p1.id!;
  await agent.call({ op: 'close', fd: m1.fd! });

  // a program kept only by a pinned cgroup link nobody holds
  const cg = await world.makeCgroup();
  const p2 = await agent.call({ op: 'prog', name: 'linked_prog' });
  ids.p2 = p2.id!;
  await agent.call({ op: 'pin', fd: p2.fd!, path: at('linked_prog') });
  const l2 = await agent.call({ op: 'link', progFd: p2.fd!, cgroup: cg });
  ids.l2 = l2.id!;
  await agent.call({ op: 'pin', fd: l2.fd!, path: at('linked') });
  await agent.call({ op: 'close', fd: p2.fd! });
  await agent.call({ op: 'close', fd: l2.fd! });

  // a map only mmapped by a live process
  const m3 = await agent.call({ op: 'map', name: 'mmapped', type: 'array', mmapable: true });
  ids.m3 = m3.id!;
  await agent.call({ op: 'pin', fd: m3.fd!, path: at('mmapped') });
  await agent.call({ op: 'mmap', fd: m3.fd! });
  await agent.call({ op: 'close', fd: m3.fd! });

  // a path the catalog says is kept on purpose (Cilium's tc/globals)
  const m4 = await agent.call({ op: 'map', name: 'cilium_ct4_glob' });
  await agent.call({ op: 'pin', fd: m4.fd!, path: at('tc/globals/cilium_ct4_global') });
  await agent.call({ op: 'close', fd: m4.fd! });

  // nothing holds or uses it, nobody known made it
  const m5 = await agent.call({ op: 'map', name: 'stray' });
  ids.m5 = m5.id!;
  await agent.call({ op: 'pin', fd: m5.fd!, path: at('stray') });
  await agent.call({ op: 'close', fd: m5.fd! });

  doc = pinleakJson(['scan'], { db: db.db });
});

describe('statuses on the real kernel', () => {
  it('a map used by a held program is in-use', () => {
    const p = pin('/used_by_held');
    expect(p.object!.id).toBe(ids.m1);
    expect(p.status).toBe('in-use');
    expect(p.usedBy).toEqual([{ kind: 'prog', id: ids.p1, via: `used by program ${ids.p1} (held_prog)` }]);
    expect(p.reasons[0]).toMatch(new RegExp(`used by program ${ids.p1} \\(held_prog\\), held by pid ${agent.pid}`));
  });

  it('a program kept only by a cgroup link is in-use; the pinned link nobody holds is orphaned', () => {
    const prog = pin('/linked_prog');
    expect(prog.status).toBe('in-use');
    expect(prog.reasons[0]).toMatch(new RegExp(`behind live cgroup link ${ids.l2}`));
    const link = pin('/linked');
    expect(link.object).toMatchObject({ kind: 'link', id: ids.l2, name: 'linked_prog', type: 'cgroup' });
    expect(link.status).toBe('orphaned');
    expect(link.reasons[0]).toMatch(/pinned link that no process holds/);
  });

  it('a map only mmapped by a live process is held', () => {
    const p = pin('/mmapped');
    expect(p.object!.id).toBe(ids.m3);
    expect(p.status).toBe('held');
    expect(p.holders).toHaveLength(1);
    expect(p.holders[0]).toMatchObject({ pid: agent.pid, fds: [], mmapped: true });
  });

  it('kernel preload iterators and catalog paths are persistent', () => {
    for (const name of ['/maps.debug', '/progs.debug']) expect(pin(name).status).toBe('persistent');
    const c = pin('/tc/globals/cilium_ct4_global');
    expect(c.status).toBe('persistent');
    expect(c.owner).toMatchObject({ tool: 'cilium', persistent: true });
  });

  it('a pin nothing reaches is orphaned, and counted in the summary', () => {
    const p = pin('/stray');
    expect(p.status).toBe('orphaned');
    expect(p.creator).toBeNull();
    expect(doc.summary.byStatus.orphaned).toBeGreaterThanOrEqual(2);
  });

  it('a link whose cgroup is gone is leaked', async () => {
    const cg = await world.makeCgroup();
    const prog = await agent.call({ op: 'prog', name: 'doomed' });
    const link = await agent.call({ op: 'link', progFd: prog.fd!, cgroup: cg });
    await agent.call({ op: 'pin', fd: link.fd!, path: path.join(bpffs.path, 'defunct') });
    await agent.call({ op: 'close', fd: link.fd! });
    await agent.call({ op: 'close', fd: prog.fd! });
    const { rmdirSync } = await import('node:fs');
    rmdirSync(cg);
    const after = pinleakJson(['scan'], { db: db.db });
    const p = after.pins.find((x) => x.instance === bpffs.dev && x.path === '/defunct')!;
    expect(p.object).toMatchObject({ kind: 'link', id: link.id, type: 'cgroup' });
    expect(p.status).toBe('leaked');
    expect(p.reasons.join(' ')).toMatch(/defunct/);
  });
});
