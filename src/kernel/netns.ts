// Running code in another network namespace. Unlike a mount namespace, a network
// namespace can be entered by one thread of a multithreaded process (setns(CLONE_NEWNET)
// changes only the calling thread), so the main thread enters, does its netlink dumps and
// ifindex queries synchronously (no other JavaScript runs meanwhile), and returns to the
// namespace it started in. Not returning would make every later read of the scan describe
// the wrong namespace: that is fatal, never an error to carry on with.
import fs from 'node:fs';
import koffi from 'koffi';
import { CLONE_NEWNET, NS_GET_NSTYPE } from './abi.js';
import { libcFunction } from './libc.js';
import { KernelError } from './bpf.js';
import { parseNsLink } from './procfs.js';

const setnsFn = libcFunction<(fd: number, nstype: number) => number>('int setns(int fd, int nstype)');
const ioctl = libcFunction<(fd: number, req: number) => number>('int ioctl(int fd, unsigned long req)');
const setns = (fd: number): number => Number(setnsFn()(fd, CLONE_NEWNET));

let nsfsDev: number | null = null;

/**
 * The network namespace behind a file that readlink does not name as one (an nsfs file
 * opened through a bind mount reads as the mount's path, or as "/" once the mount is
 * gone); null when it is not one. The file is stat'ed before it is opened: only an nsfs
 * file is opened (never a FIFO that would block).
 */
export function netnsOfFile(file: string): number | null {
  try {
    nsfsDev ??= fs.statSync('/proc/thread-self/ns/net').dev;
    const st = fs.statSync(file);
    if (st.dev !== nsfsDev) return null;
    const fd = fs.openSync(file, fs.constants.O_RDONLY);
    try {
      return Number(ioctl()(fd, NS_GET_NSTYPE)) === CLONE_NEWNET ? fs.fstatSync(fd).ino : null;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null; // gone, or not ours to open
  }
}

/** The inode of the calling thread's network namespace. */
export function currentNetns(): number {
  const ino = parseNsLink(fs.readlinkSync('/proc/thread-self/ns/net'), 'net');
  if (ino === null) throw new Error('cannot read /proc/thread-self/ns/net');
  return ino;
}

let home: { fd: number; ino: number } | null = null;

/** The namespace the main thread started in, opened once and kept for the life of the process. */
function homeNetns(): { fd: number; ino: number } {
  if (!home) {
    const fd = fs.openSync('/proc/thread-self/ns/net', fs.constants.O_RDONLY);
    home = { fd, ino: fs.fstatSync(fd).ino };
  }
  return home;
}

function lostNamespace(message: string): never {
  process.stderr.write(`pinleak: fatal: ${message}; stopping rather than reading the wrong network namespace\n`);
  process.exit(2);
}

/**
 * Runs fn in the network namespace of `nsFd` (an open nsfs file whose inode is `ino`),
 * then returns to the original namespace, also when fn throws.
 */
export function inNetns<T>(nsFd: number, ino: number, fn: () => T): T {
  const origin = homeNetns();
  if (ino === origin.ino) return fn();
  if (setns(nsFd) < 0) throw new KernelError('setns(CLONE_NEWNET)', koffi.errno(), `netns ${ino}`);
  try {
    return fn();
  } finally {
    const failed = setns(origin.fd) < 0 ? `errno ${koffi.errno()}` : null;
    let now: number | null = null;
    try {
      now = currentNetns();
    } catch {
      /* reported below */
    }
    if (failed || now !== origin.ino) {
      lostNamespace(`could not return from network namespace ${ino} to ${origin.ino} (${failed ?? `now in ${now}`})`);
    }
  }
}
