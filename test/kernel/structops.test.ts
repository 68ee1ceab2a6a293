// A real TCP congestion control registered through struct_ops, read back with
// readStructOps; /proc and bpftool are the witnesses.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { worldForFile } from '../world/for-file.js';
import { registerCongestionControl, CONGESTION_CONTROLS, type RegisteredStructOps } from '../world/struct-ops.js';
import { readStructOps } from '../../src/kernel/structops.js';
import { readKernelCounts, closeIterators } from '../../src/kernel/iterators.js';
import { mapCreate, closeFd, KernelError } from '../../src/kernel/bpf.js';
import { MapType } from '../../src/kernel/abi.js';
import { bpftool } from '../helpers.js';

/** `bpftool -j struct_ops dump` prints two JSON objects separated by a comma: the map's info, then its value */
function bpftoolDump(id: number): { data: Record<string, unknown>; common: { state: string } } {
  const r = spawnSync('bpftool', ['-j', 'struct_ops', 'dump', 'id', String(id)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool struct_ops dump: ${r.stderr}`);
  const [, value] = JSON.parse(`[${r.stdout}]`) as [unknown, Record<string, { data: Record<string, unknown>; common: { state: string } }>];
  return Object.values(value)[0]!;
}

const t = worldForFile();
afterAll(() => closeIterators());
const available = () => fs.readFileSync(CONGESTION_CONTROLS, 'utf8').trim().split(/\s+/);

describe('struct_ops', () => {
  let cc: RegisteredStructOps;

  it('registers a congestion control the kernel lists', () => {
    cc = registerCongestionControl(t.world);
    expect(available()).toContain(cc.name);
  });

  it('reads it back: registered (inuse), its name, and the program in each slot', () => {
    const v = readStructOps(cc.mapFd);
    expect(v).toEqual({
      state: 'inuse', structName: 'tcp_congestion_ops', name: cc.name,
      slots: expect.arrayContaining([
        { member: 'ssthresh', progId: cc.progIds.ssthresh },
        { member: 'cong_avoid', progId: cc.progIds.cong_avoid },
        { member: 'undo_cwnd', progId: cc.progIds.undo_cwnd },
      ]),
    });
    expect(v.slots).toHaveLength(3);
  });

  it('counts as KERNEL-FACTS says: the registration holds the map once and each slot its program', () => {
    const counts = readKernelCounts();
    // iterator + our fd + registered without a link; usercnt: the fd only
    expect(counts.maps.get(cc.mapId)).toMatchObject({ refcnt: 1 + 1 + 1, usercnt: 1, type: MapType.STRUCT_OPS });
    // iterator + our fd + its slot
    for (const id of Object.values(cc.progIds)) expect(counts.progs.get(id)!.refcnt).toBe(1 + 1 + 1);
  });

  it('agrees with bpftool struct_ops', () => {
    const shown = bpftool(['struct_ops', 'show', 'id', String(cc.mapId)]) as { id: number; name: string; kernel_struct_ops: string };
    expect(shown).toEqual({ id: cc.mapId, name: cc.name, kernel_struct_ops: 'tcp_congestion_ops' });
    const dumped = bpftoolDump(cc.mapId);
    expect(dumped.common.state).toBe('BPF_STRUCT_OPS_STATE_INUSE');
    // bpftool prints a slot as "<signature> <name>/prog_id:N", an empty one as "<signature> 0"
    const bySlot = Object.entries(dumped.data)
      .map(([member, text]) => [member, /prog_id:(\d+)$/.exec(String(text))?.[1]] as const)
      .filter(([, id]) => id !== undefined)
      .map(([member, id]) => ({ member, progId: Number(id) }));
    expect(readStructOps(cc.mapFd).slots).toEqual(bySlot);
  });

  it('after unregistering: the kernel no longer lists it and the map says so', () => {
    cc.unregister();
    expect(available()).not.toContain(cc.name);
    expect(readStructOps(cc.mapFd).state).toBe('tobefree');
    cc.close();
  });

  it('refuses a map that is not struct_ops', () => {
    const fd = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 1, name: 'pl_not_ops' });
    try {
      expect(() => readStructOps(fd)).toThrow(KernelError);
      expect(() => readStructOps(fd)).toThrow(/is a hash map/);
    } finally {
      closeFd(fd);
    }
  });
});
