// A registered struct_ops (a TCP congestion control) whose loader exited: its pinned map is
// in-use by the registration, its pinned programs by their slots; clean leaves them and the
// congestion control stays registered. Unregistered, the same pins are orphaned.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fdById, objPin, closeFd, mapDelete } from '../../src/kernel/bpf.js';
import { pinleakJson } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import { CONGESTION_CONTROLS, registerCongestionControl } from '../world/struct-ops.js';
import type { Mount } from '../world/world.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';
import type { CleanResult } from '../../src/cli/clean.js';

const t = worldForFile();
let bpffs: Mount;

const pinAt = (doc: SnapshotDoc, p: string): Pin => {
  const found = doc.pins.find((x) => x.instance === bpffs.dev && x.path === p);
  if (!found) throw new Error(`no pin ${p}`);
  return found;
};
const registered = (name: string) => fs.readFileSync(CONGESTION_CONTROLS, 'utf8').trim().split(/\s+/).includes(name);
const scan = () => pinleakJson(['scan'], { db: t.db.db });

describe('struct_ops', () => {
  it('a registered congestion control keeps its map and slot programs in use; unregistered they are orphaned', async () => {
    bpffs = await t.world.mountBpffs('ops');
    const cc = registerCongestionControl(t.world);
    objPin(cc.mapFd, path.join(bpffs.path, 'cc_map'));
    for (const [member, id] of Object.entries(cc.progIds)) {
      const fd = fdById('prog', id)!;
      objPin(fd, path.join(bpffs.path, member));
      closeFd(fd);
    }
    cc.detach(); // the loader exits; the registration stays
    expect(registered(cc.name)).toBe(true);

    const live = scan();
    const map = pinAt(live, '/cc_map');
    expect(map.holders).toEqual([]);
    expect(map.status).toBe('in-use');
    expect(map.reasons[0]).toBe(`registered tcp_congestion_ops '${cc.name}'`);
    expect(map.usedBy).toContainEqual({ kind: 'struct_ops', id: cc.mapId, via: `registered tcp_congestion_ops '${cc.name}'` });
    for (const [member, id] of Object.entries(cc.progIds)) {
      const p = pinAt(live, `/${member}`);
      expect(p.object!.id).toBe(id);
      expect(p.status, member).toBe('in-use');
      expect(p.reasons[0]).toBe(`${member} of tcp_congestion_ops '${cc.name}' (struct_ops map ${cc.mapId}), registered tcp_congestion_ops '${cc.name}'`);
    }
    const kept = pinleakJson<CleanResult>(['clean', '--status', 'orphaned,leaked', '--instance', bpffs.dev, '--yes'], { db: t.db.db });
    expect(kept.removed).toEqual([]);
    expect(registered(cc.name)).toBe(true);

    // unregistered: nothing uses the map or its programs any more
    const fd = fdById('map', cc.mapId, true)!;
    try {
      mapDelete(fd, Buffer.alloc(4));
    } finally {
      closeFd(fd);
    }
    expect(registered(cc.name)).toBe(false);
    // the kernel frees a struct_ops map's registration after an RCU grace period
    let gone: SnapshotDoc = scan();
    for (let i = 0; i < 20 && pinAt(gone, '/cc_map').status !== 'orphaned'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      gone = scan();
    }
    for (const p of ['/cc_map', ...Object.keys(cc.progIds).map((m) => `/${m}`)]) expect(pinAt(gone, p).status, p).toBe('orphaned');
  });
});
