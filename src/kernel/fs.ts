// Path operations that a hostile container cannot steer: resolving below a directory fd
// without following any symlink (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH |
// RESOLVE_NO_XDEV), checking which file system an fd is on (fstatfs), and unlinking
// relative to a held directory (unlinkat).
import fs from 'node:fs';
import os from 'node:os';
import koffi from 'koffi';
import {
  OpenHow, StatFs, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV,
  AT_REMOVEDIR, SYSCALL_OPENAT2, O_PATH, O_CLOEXEC, sizeOf, LOCK_EX, LOCK_NB,
} from './abi.js';
import { KernelError } from './bpf.js';
import { libc, libcFunction } from './libc.js';

interface FsCalls {
  openat2: (nr: number, dirfd: number, path: string, how: Buffer, size: number) => number;
  fstatfs: (fd: number, buf: Buffer) => number;
  unlinkat: (dirfd: number, path: string, flags: number) => number;
}
let calls: FsCalls | null = null;

function c(): FsCalls {
  if (!calls) {
    const lib = libc();
    calls = {
      openat2: lib.func('long syscall(long nr, int dirfd, const char *path, void *how, unsigned long size)') as unknown as FsCalls['openat2'],
      fstatfs: lib.func('int fstatfs(int fd, void *buf)') as unknown as FsCalls['fstatfs'],
      unlinkat: lib.func('int unlinkat(int dirfd, const char *path, int flags)') as unknown as FsCalls['unlinkat'],
    };
  }
  return calls;
}

/**
 * Opens `rel` (relative, no leading slash; '' for the directory itself is not allowed)
 * below `dirFd` as an O_PATH directory, refusing any symlink, magic link, `..` escape or
 * mount crossing on the way.
 */
export function openDirBeneath(dirFd: number, rel: string): number {
  const how = Buffer.alloc(sizeOf(OpenHow));
  koffi.encode(how, OpenHow, {
    flags: BigInt(fs.constants.O_DIRECTORY | O_PATH | fs.constants.O_NOFOLLOW | O_CLOEXEC),
    mode: 0n,
    resolve: BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS),
  });
  const fd = Number(c().openat2(SYSCALL_OPENAT2, dirFd, rel, how, how.length));
  if (fd < 0) throw new KernelError('openat2', koffi.errno(), rel);
  return fd;
}

/** The file system magic of the file system an fd is on (statfs f_type). */
export function fsMagic(fd: number): number {
  const buf = Buffer.alloc(sizeOf(StatFs));
  if (c().fstatfs(fd, buf) < 0) throw new KernelError('fstatfs', koffi.errno());
  return Number(koffi.decode(buf, StatFs).f_type) >>> 0;
}

export function unlinkAt(dirFd: number, name: string, removeDir = false): void {
  if (c().unlinkat(dirFd, name, removeDir ? AT_REMOVEDIR : 0) < 0) {
    throw new KernelError(removeDir ? 'rmdir' : 'unlink', koffi.errno(), name);
  }
}

const flockCall = libcFunction<(fd: number, op: number) => number>('int flock(int fd, int op)');

/**
 * An exclusive flock(2) on `file` (created 0600 when missing), or null when another
 * process holds it. The lock lives as long as the returned fd: the kernel drops it when
 * the process exits, however it exits (SIGKILL too), so a stale lock cannot exist.
 */
export function tryLockFile(file: string): number | null {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600); // libuv adds O_CLOEXEC
  if (flockCall()(fd, LOCK_EX | LOCK_NB) === 0) return fd;
  const errno = koffi.errno();
  fs.closeSync(fd);
  if (errno === os.constants.errno.EWOULDBLOCK) return null;
  throw new KernelError('flock', errno, file);
}
