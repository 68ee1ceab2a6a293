// Registers a real TCP congestion control implemented by struct_ops programs, for
// tests: a struct_ops map of bpf_struct_ops_tcp_congestion_ops, three minimal
// STRUCT_OPS programs (ssthresh, cong_avoid, undo_cwnd), a unique name, and
// BPF_MAP_UPDATE_ELEM to register. Nothing is pinned; unregister() (also run by the
// world's cleanup) deletes the registration and closes every fd.
import os from 'node:os';
import { Asm, R0 } from '../../src/kernel/asm.js';
import { kernelBtf } from '../../src/kernel/btf.js';
import { loadProgram } from '../../src/kernel/loader.js';
import { mapCreate, mapUpdate, mapDelete, mapInfo, progInfo, closeFd, btfLoad, KernelError } from '../../src/kernel/bpf.js';
import { MapType, ProgType, BTF_MAGIC, BtfKind } from '../../src/kernel/abi.js';
import type { World } from './world.js';

const OPS = 'tcp_congestion_ops';
/** the members a congestion control must have (tcp_validate_congestion_control), with a return value */
const SLOTS: Record<string, number> = { ssthresh: 2, cong_avoid: 0, undo_cwnd: 10 };
export const CONGESTION_CONTROLS = '/proc/sys/net/ipv4/tcp_available_congestion_control';

/**
 * The smallest BTF the kernel accepts: one `int`. A struct_ops map's value type is a
 * vmlinux type, but BPF_MAP_CREATE still wants a BTF object in btf_fd (the program's
 * own BTF, for a compiled loader).
 */
function minimalBtf(): Buffer {
  const strings = Buffer.from('\0int\0', 'latin1');
  const type = Buffer.alloc(16);
  type.writeUInt32LE(1, 0); // name_off: "int"
  type.writeUInt32LE(BtfKind.int << 24, 4);
  type.writeUInt32LE(4, 8); // size
  type.writeUInt32LE(32, 12); // encoding: 32 bits, unsigned
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(BTF_MAGIC, 0);
  hdr[2] = 1;
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(type.length, 12);
  hdr.writeUInt32LE(type.length, 16);
  hdr.writeUInt32LE(strings.length, 20);
  return Buffer.concat([hdr, type, strings]);
}

export interface RegisteredStructOps {
  name: string;
  mapFd: number;
  mapId: number;
  progIds: Record<string, number>;
  /** deletes the registration (BPF_MAP_DELETE_ELEM) if it is still there; the fds stay open */
  unregister(): void;
  /** unregisters, then closes every fd; a second call does nothing (the world's cleanup calls it) */
  close(): void;
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

  const btfFd = btfLoad(minimalBtf());
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
  return { name, mapFd, mapId: mapInfo(mapFd).id, progIds, unregister, close };
}
