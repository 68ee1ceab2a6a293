// Registers a real TCP congestion control implemented by struct_ops programs, for
// tests: a struct_ops map of bpf_struct_ops_tcp_congestion_ops, three minimal
// STRUCT_OPS programs (ssthresh, cong_avoid, undo_cwnd), a unique name, and
// BPF_MAP_UPDATE_ELEM to register. Nothing is pinned; unregister() (also run by the
// world's cleanup) deletes the registration and closes every fd.
import os from 'node:os';
import { Asm, R0 } from '../../src/kernel/asm.js';
import { kernelBtf } from '../../src/kernel/btf.js';
import { loadProgram } from '../../src/kernel/loader.js';
import { mapCreate, mapUpdate, mapDelete, mapInfo, progInfo, closeFd, btfLoad, fdById, KernelError } from '../../src/kernel/bpf.js';
import { MapType, ProgType } from '../../src/kernel/abi.js';
import { buildBtf } from './btf-builder.js';
import type { World } from './world.js';

const OPS = 'tcp_congestion_ops';
/** the members a congestion control must have (tcp_validate_congestion_control), with a return value */
const SLOTS: Record<string, number> = { ssthresh: 2, cong_avoid: 0, undo_cwnd: 10 };
export const CONGESTION_CONTROLS = '/proc/sys/net/ipv4/tcp_available_congestion_control';

export interface RegisteredStructOps {
  name: string;
  mapFd: number;
  mapId: number;
  progIds: Record<string, number>;
  /** deletes the registration (BPF_MAP_DELETE_ELEM) if it is still there; the fds stay open */
  unregister(): void;
  /** unregisters, then closes every fd; a second call does nothing (the world's cleanup calls it) */
  close(): void;
  /**
   * closes every fd but keeps the registration, as a loader that exits does; the world's
   * cleanup then unregisters through a new fd (a struct_ops map may be opened by id)
   */
  detach(): void;
}

export function registerCongestionControl(world: World, name = `pl${process.pid % 100000}${Math.random().toString(36).slice(2, 6)}`): RegisteredStructOps {
  const btf = kernelBtf();
  const opsId = btf.find('struct', OPS);
  const valueTypeId = btf.find('struct', `bpf_struct_ops_${OPS}`);
  const valueSize = btf.size(valueTypeId);
  const members = btf.members(opsId);
  const data = btf.field(valueTypeId, 'data').offset;
  const nameField = btf.field(opsId, 'name');
  if (Buffer.byteLength(name) >= nameField.size) throw new Error(`congestion control name ${name} too long`);

  const fds: number[] = [];
  let mapFd = -1;
  let registered = false;
  const key = Buffer.alloc(4);
  const unregister = () => {
    if (!registered) return;
    registered = false;
    try {
      mapDelete(mapFd, key);
    } catch (e) {
      // already being freed (EINPROGRESS) or never registered (ENOENT)
      if (!(e instanceof KernelError && (e.code === 'EINPROGRESS' || e.code === 'ENOENT'))) throw e;
    }
  };
  const close = () => {
    try {
      unregister();
    } finally {
      for (const fd of fds.splice(0)) closeFd(fd);
    }
  };
  world.onCleanup(`struct_ops ${OPS} ${name}`, close);
  const detach = () => {
    registered = false; // from now on only the map id leads to it
    for (const fd of fds.splice(0)) closeFd(fd);
    const id = mapId;
    world.onCleanup(`struct_ops ${OPS} ${name} (map ${id}, detached)`, () => {
      const fd = fdById('map', id, true);
      if (fd === null) return; // gone already
      try {
        mapDelete(fd, key);
      } catch (e) {
        if (!(e instanceof KernelError && (e.code === 'EINPROGRESS' || e.code === 'ENOENT'))) throw e;
      } finally {
        closeFd(fd);
      }
    });
  };

  // BPF_MAP_CREATE wants a BTF object in btf_fd even for a vmlinux value type (a
  // compiled loader passes its own): the smallest one the kernel accepts, one int
  const btfFd = btfLoad(buildBtf((b) => { b.int('int', 4); }));
  fds.push(btfFd);
  mapFd = mapCreate({ type: MapType.STRUCT_OPS, keySize: 4, valueSize, maxEntries: 1, name, btfVmlinuxValueTypeId: valueTypeId, btfFd });
  fds.push(mapFd);
  const value = Buffer.alloc(valueSize);
  value.write(name, data + nameField.offset, 'latin1');
  const progIds: Record<string, number> = {};
  for (const [member, ret] of Object.entries(SLOTS)) {
    const index = members.findIndex((m) => m.name === member);
    const progFd = loadProgram({
      name: `${member}`.slice(0, 15), type: ProgType.STRUCT_OPS, insns: new Asm().mov(R0, ret).exit().assemble(),
      attachBtfId: opsId, expectedAttachType: index,
    });
    fds.push(progFd);
    progIds[member] = progInfo(progFd).id;
    // the kernel reads each slot as an unsigned long holding the program's fd
    const at = data + members[index]!.bitOffset / 8;
    if (os.endianness() === 'LE') value.writeBigUInt64LE(BigInt(progFd), at);
    else value.writeBigUInt64BE(BigInt(progFd), at);
  }
  mapUpdate(mapFd, key, value);
  registered = true;
  const mapId = mapInfo(mapFd).id;
  return { name, mapFd, mapId, progIds, unregister, close, detach };
}
