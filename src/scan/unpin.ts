// Removing one pin safely. The parent directory is resolved below the mount's root without
// following any symlink (openat2), checked to be on the same bpffs instance (statfs magic
// and device), the pin re-opened through that directory and compared with what we meant
// to remove, and only then unlinked relative to the held directory.
import fs from 'node:fs';
import { BPF_FS_MAGIC } from '../kernel/abi.js';
import { closeFd, KernelError } from '../kernel/bpf.js';
import { devString } from '../kernel/procfs.js';
import { fsMagic, openDirBeneath, unlinkAt } from '../kernel/fs.js';
import { isWithin, type InstanceAccess } from './instances.js';
import type { ObjectReader } from './pins.js';

export interface UnpinTarget {
  instance: string;
  path: string;
  inode: number;
  kind: string;
  id: number;
}

export interface PinHandle {
  /** re-reads the pin through the held parent directory: null when it is still the target, else why not */
  verify(): string | null;
  unlink(): void;
  /** removes the directories the unlink left empty, up to (not including) the mount root */
  removeEmptyParents(): string[];
  close(): void;
}

function onInstance(fd: number, dev: string): string | null {
  const magic = fsMagic(fd);
  if (magic !== BPF_FS_MAGIC) return `not on a bpffs (statfs magic 0x${magic.toString(16)})`;
  const d = devString(fs.fstatSync(fd).dev);
  if (d !== dev) return `on another file system instance (${d})`;
  return null;
}

/** Opens the parent of a pin; throws with a reason when it cannot be reached safely. */
export function openPin(target: UnpinTarget, accesses: InstanceAccess[], reader: ObjectReader): PinHandle {
  const access = accesses.find((a) => isWithin(target.path, a.mount.root) && target.path !== a.mount.root);
  if (!access) throw new Error('no mount of its instance shows this path');
  const below = (access.mount.root === '/' ? target.path : target.path.slice(access.mount.root.length)).replace(/^\/+/, '');
  const parts = below.split('/');
  const name = parts.pop()!;
  const parentRel = parts.join('/');
  const rootFd = fs.openSync(access.path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const fds = [rootFd];
  const closeAll = () => fds.forEach(closeFd);
  try {
    let bad = onInstance(rootFd, target.instance);
    if (bad) throw new Error(`mount root ${access.mount.mountPoint} is ${bad}`);
    const parentFd = parentRel ? openDirBeneath(rootFd, parentRel) : rootFd;
    if (parentFd !== rootFd) fds.push(parentFd);
    bad = onInstance(parentFd, target.instance);
    if (bad) throw new Error(`its directory is ${bad}`);
    const at = `/proc/self/fd/${parentFd}/${name}`;
    return {
      verify() {
        let st: fs.Stats;
        try {
          st = fs.lstatSync(at);
        } catch {
          return 'the pin is gone';
        }
        if (!st.isFile()) return 'the path is no longer a pin (a symlink or directory now)';
        if (st.ino !== target.inode) return 'the pin was replaced (another inode)';
        try {
          const o = reader.read(parentFd, name);
          if (o.kind !== target.kind || o.id !== target.id) return `the path now holds ${o.kind} ${o.id}, not ${target.kind} ${target.id}`;
        } catch (e) {
          return `the pin cannot be opened now (${e instanceof KernelError ? e.code : (e as Error).message})`;
        }
        return null;
      },
      unlink() {
        unlinkAt(parentFd, name);
      },
      removeEmptyParents() {
        const removed: string[] = [];
        const dirs = [...parts];
        while (dirs.length) {
          const dirName = dirs.pop()!;
          const upRel = dirs.join('/');
          const upFd = upRel ? openDirBeneath(rootFd, upRel) : rootFd;
          try {
            if (onInstance(upFd, target.instance)) break;
            unlinkAt(upFd, dirName, true);
            removed.push('/' + [access.mount.root.replace(/^\/+/, ''), upRel, dirName].filter(Boolean).join('/'));
          } catch (e) {
            if (e instanceof KernelError && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST' || e.code === 'ENOENT')) break;
            throw e;
          } finally {
            if (upFd !== rootFd) closeFd(upFd);
          }
        }
        return removed;
      },
      close: closeAll,
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}
