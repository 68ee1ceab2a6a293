// A scan into a database reuses the object of each unchanged pin from the previous
// snapshot of the boot; anything that changed must still be read fresh.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { bpftool, pinleakJson } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';

const t = worldForFile();

describe('object cache across scans of one boot', () => {
  it('gives the same answers as a fresh read, and sees replaced pins and changed holders', async () => {
    const bpffs = await t.world.mountBpffs('cache');
    const agent = await t.world.spawnAgent();
    const a = await agent.call({ op: 'map', name: 'first' });
    await agent.call({ op: 'pin', fd: a.fd!, path: path.join(bpffs.path, 'a') });
    await agent.call({ op: 'close', fd: a.fd! });
    const b = await agent.call({ op: 'map', name: 'held_then_not' });
    await agent.call({ op: 'pin', fd: b.fd!, path: path.join(bpffs.path, 'b') });
    const c = await agent.call({ op: 'map', name: 'untouched' });
    await agent.call({ op: 'pin', fd: c.fd!, path: path.join(bpffs.path, 'c') });
    await agent.call({ op: 'close', fd: c.fd! });

    const mine = (d: ReturnType<typeof pinleakJson>) => Object.fromEntries(d.pins.filter((p) => p.instance === bpffs.dev).map((p) => [p.path, p]));
    const one = mine(pinleakJson(['scan'], { db: t.db.db }));
    expect(one['/b']!.status).toBe('held');

    fs.unlinkSync(path.join(bpffs.path, 'a')); // /a now holds another object
    const d = await agent.call({ op: 'map', name: 'second' });
    await agent.call({ op: 'pin', fd: d.fd!, path: path.join(bpffs.path, 'a') });
    await agent.call({ op: 'close', fd: d.fd! });
    await agent.call({ op: 'close', fd: b.fd! }); // /b no longer held

    const two = mine(pinleakJson(['scan'], { db: t.db.db }));
    expect(two['/a']!.object).toMatchObject({ id: d.id, name: 'second' });
    expect(two['/b']!.object!.id).toBe(b.id);
    expect(two['/b']!.status).toBe('orphaned');
    expect(two['/c']!.object).toEqual(one['/c']!.object); // reused, and still right
    for (const p of Object.values(two)) {
      if (!p.object) continue;
      const oracle = bpftool(['map', 'show', 'id', String(p.object.id)]) as { name: string; bytes_memlock: number };
      expect([p.object.name, p.object.memlockBytes]).toEqual([oracle.name, oracle.bytes_memlock]);
    }
    const fresh = mine(pinleakJson(['scan', '--no-store', '--db', path.join(t.db.dir, 'other.db')]));
    for (const k of Object.keys(two)) expect(two[k]!.object).toEqual(fresh[k]!.object);
  });
});
