// A scan into a database reuses the object of each unchanged pin from the previous
// snapshot of the boot; anything that changed must still be read fresh.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { bpftool, pinleakJson } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import { closeFd, mapCreate, mapUpdate, objPin } from '../../src/kernel/bpf.js';
import { BPF_F_NO_PREALLOC, MapType } from '../../src/kernel/abi.js';

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

describe('object cache and memory that grows', () => {
  it('reads a used map again when its memory can grow, and takes a fixed-size one from the cache', async () => {
    const bpffs = await t.world.mountBpffs('cache-grow');
    const fds: number[] = [];
    try {
      // held by this test process, so both are busy at both scans
      const growing = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: 64, maxEntries: 1024, flags: BPF_F_NO_PREALLOC, name: 'grows' });
      fds.push(growing);
      const fixed = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 64, maxEntries: 1024, name: 'fixed_size' });
      fds.push(fixed);
      objPin(growing, path.join(bpffs.path, 'grows'));
      objPin(fixed, path.join(bpffs.path, 'fixed'));
      const scan = () => Object.fromEntries(pinleakJson(['scan'], { db: t.db.db }).pins
        .filter((p) => p.instance === bpffs.dev).map((p) => [p.path, p.object!]));
      const oracle = (id: number) => (bpftool(['map', 'show', 'id', String(id)]) as { bytes_memlock: number }).bytes_memlock;

      const one = scan();
      for (let k = 0; k < 512; k++) {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(k);
        mapUpdate(growing, key, Buffer.alloc(64, 1));
        mapUpdate(fixed, key, Buffer.alloc(64, 1));
      }
      const two = scan();
      expect(oracle(two['/grows']!.id)).toBeGreaterThan(one['/grows']!.memlockBytes); // it grew...
      expect(two['/grows']!.memlockBytes).toBe(oracle(two['/grows']!.id)); // ...and the scan says so
      expect(two['/fixed']!.memlockBytes).toBe(one['/fixed']!.memlockBytes);
      expect(two['/fixed']!.memlockBytes).toBe(oracle(two['/fixed']!.id));
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  });
});
