// The last line of defence of clean, tested directly: the parent of a pin is resolved
// without following symlinks, must be on the same bpffs instance, and the pin must still
// be the object we meant.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { createWorld, topMountAt, type World, type Mount, type Agent } from '../world/world.js';
import { openPin, type UnpinTarget } from '../../src/scan/unpin.js';
import { objectReader, walkInstance } from '../../src/scan/pins.js';
import type { InstanceAccess, InstanceView } from '../../src/scan/instances.js';
import type { ScanError } from '../../src/model.js';

let world: World;
let bpffs: Mount;
let agent: Agent;
let access: InstanceAccess[];
const reader = objectReader();

async function pin(rel: string, name = 'm'): Promise<UnpinTarget> {
  const m = await agent.call({ op: 'map', name });
  const p = path.join(bpffs.path, rel);
  await agent.call({ op: 'pin', fd: m.fd!, path: p });
  await agent.call({ op: 'close', fd: m.fd! });
  return { instance: bpffs.dev, path: '/' + rel, inode: fs.lstatSync(p).ino, kind: 'map', id: m.id! };
}

beforeAll(async () => {
  world = createWorld();
  bpffs = await world.mountBpffs('unpin');
  agent = await world.spawnAgent();
  access = [{ path: bpffs.path, readerPid: process.pid, nsPids: [process.pid], mount: { mntNs: world.hostMntNs, mountId: 0, mountPoint: bpffs.path, root: '/', superOptions: 'rw' } }];
});
afterAll(async () => {
  await world.cleanup();
});

describe('openPin', () => {
  it('unlinks the pin it verified and removes only the directories it emptied', async () => {
    const t = await pin('a/b/m');
    fs.mkdirSync(path.join(bpffs.path, 'a', 'keep'));
    const h = openPin(t, access, reader);
    try {
      expect(h.verify()).toBeNull();
      h.unlink();
      expect(h.removeEmptyParents()).toEqual(['/a/b']); // a/ still holds keep/
    } finally {
      h.close();
    }
    expect(fs.existsSync(path.join(bpffs.path, 'a/b'))).toBe(false);
    expect(fs.existsSync(path.join(bpffs.path, 'a/keep'))).toBe(true);
  });

  it('refuses a parent that became a symlink, to the same bpffs or to host files', async () => {
    const t = await pin('swap/m');
    const other = await pin('elsewhere/m', 'other');
    fs.renameSync(path.join(bpffs.path, 'swap'), path.join(bpffs.path, 'swapped'));
    fs.symlinkSync(path.join(bpffs.path, 'elsewhere'), path.join(bpffs.path, 'swap'));
    // the last component a symlink: O_NOFOLLOW|O_DIRECTORY refuses it
    expect(() => openPin(t, access, reader)).toThrow(/ELOOP|ENOTDIR/);
    fs.unlinkSync(path.join(bpffs.path, 'swap'));
    const hostDir = path.join(world.dir, 'hostdir');
    fs.mkdirSync(hostDir);
    fs.writeFileSync(path.join(hostDir, 'm'), 'host file');
    fs.symlinkSync(hostDir, path.join(bpffs.path, 'swap'));
    expect(() => openPin(t, access, reader)).toThrow(/ELOOP|ENOTDIR/);
    // a symlink in the middle of the path: RESOLVE_NO_SYMLINKS refuses it
    const deep = await pin('top/mid/m');
    fs.renameSync(path.join(bpffs.path, 'top/mid'), path.join(bpffs.path, 'top/midold'));
    fs.symlinkSync(hostDir, path.join(bpffs.path, 'top/mid'));
    fs.mkdirSync(path.join(hostDir, 'inner'));
    expect(() => openPin({ ...deep, path: '/top/mid/inner/m' }, access, reader)).toThrow(/ELOOP/);
    expect(fs.readFileSync(path.join(hostDir, 'm'), 'utf8')).toBe('host file');
    expect(fs.existsSync(path.join(bpffs.path, 'elsewhere/m'))).toBe(true);
    void other;
  });

  it('notices a pin swapped for a symlink or for another object under the held directory', async () => {
    const t = await pin('d/m');
    const h = openPin(t, access, reader);
    try {
      fs.renameSync(path.join(bpffs.path, 'd/m'), path.join(bpffs.path, 'd/moved'));
      fs.symlinkSync(path.join(bpffs.path, 'd/moved'), path.join(bpffs.path, 'd/m'));
      expect(h.verify()).toMatch(/no longer a pin/);
      fs.unlinkSync(path.join(bpffs.path, 'd/m'));
      await pin('d/m', 'impostor');
      expect(h.verify()).toMatch(/replaced|now holds map/);
    } finally {
      h.close();
    }
  });

  it('refuses a mount root that is not the bpffs instance', async () => {
    const t = await pin('r/m');
    const notBpf = [{ ...access[0]!, path: world.dir }];
    expect(() => openPin(t, notBpf, reader)).toThrow(/not on a bpffs/);
    const otherInstance = await world.mountBpffs('unpin-other');
    expect(() => openPin(t, [{ ...access[0]!, path: otherInstance.path }], reader)).toThrow(/another file system instance/);
  });
});

describe('walkInstance', () => {
  const view = (mountId: number, p: string): InstanceView => ({
    instance: { dev: bpffs.dev, mounts: [], delegation: null, pinCount: 0, memlockBytes: 0, error: null },
    accesses: [{ path: p, readerPid: process.pid, nsPids: [process.pid], mount: { mntNs: world.hostMntNs, mountId, mountPoint: p, root: '/', superOptions: 'rw' } }],
  });

  it('treats an instance unmounted during the scan as gone, not as an error', () => {
    const errors: ScanError[] = [];
    expect(walkInstance(view(987654321, path.join(world.dir, 'no-such-mount')), reader, errors)).toBeNull();
    expect(errors).toEqual([]);
  });

  it('reports a mount that still exists but cannot be walked', () => {
    const mine = topMountAt(bpffs.path)!;
    const errors: ScanError[] = [];
    const v = view(mine.id, path.join(world.dir, 'not-the-mount-point'));
    expect(walkInstance(v, reader, errors)).toEqual([]);
    expect(errors[0]!.message).toMatch(/could not walk mount root \/: .*ENOENT/);
    expect(v.instance.error).toMatch(/ENOENT/);
  });
});
