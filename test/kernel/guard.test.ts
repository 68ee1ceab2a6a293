// The count guard on the real kernel: referrers with no API (a socket filter, an fd in
// flight in SCM_RIGHTS) are counted by the kernel, so their pins are in-use, never leaks;
// once those referrers are gone, the same pins are orphaned.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapCreate, progLoad, trivialProgram, objPin, closeFd } from '../../src/kernel/bpf.js';
import { MapType, ProgType } from '../../src/kernel/abi.js';
import { pinleak, pinleakJson, start, type Started } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import type { Mount } from '../world/world.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';
import type { CleanResult } from '../../src/cli/clean.js';

const HOLDER = fileURLToPath(new URL('../world/hidden-holder.py', import.meta.url));
const t = worldForFile();
let bpffs: Mount;

/** Starts hidden-holder.py with `fd` as its fd 3; resolves once it holds the object its way. */
async function hiddenHolder(mode: 'filter' | 'in-flight', fd: number): Promise<Started> {
  const holder = start('python3', [HOLDER, mode], { stdio: ['pipe', 'pipe', 'inherit', fd] });
  const { child } = holder;
  t.world.onCleanup(`hidden holder ${child.pid}`, () => {
    child.stdin?.destroy();
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', (d) => (String(d).startsWith('ready') ? resolve() : reject(new Error(String(d)))));
    void holder.ended.then(({ code }) => reject(new Error(`hidden holder exited with ${code}`)), reject);
  });
  return holder;
}

async function stop(holder: Started): Promise<void> {
  holder.child.stdin!.end();
  await holder.ended;
}

function scan(): SnapshotDoc {
  return pinleakJson(['scan'], { db: t.db.db });
}

const pinAt = (doc: SnapshotDoc, p: string): Pin => {
  const found = doc.pins.find((x) => x.instance === bpffs.dev && x.path === p);
  if (!found) throw new Error(`no pin ${p}`);
  return found;
};

describe('count guard', () => {
  it('a socket filter keeps its program and the program\'s map in use; an fd in flight keeps its map in use', async () => {
    bpffs = await t.world.mountBpffs('guard');
    const at = (p: string) => path.join(bpffs.path, p);

    const filterMap = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'guard_fmap' });
    const filterProg = progLoad({ type: ProgType.SOCKET_FILTER, insns: trivialProgram(filterMap), name: 'guard_filter' });
    const flightMap = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'guard_flight' });
    objPin(filterMap, at('filter_map'));
    objPin(filterProg, at('filter_prog'));
    objPin(flightMap, at('flight_map'));
    const filterHolder = await hiddenHolder('filter', filterProg);
    const flightHolder = await hiddenHolder('in-flight', flightMap);
    for (const fd of [filterMap, filterProg, flightMap]) closeFd(fd);

    const live = scan();
    const prog = pinAt(live, '/filter_prog');
    expect(prog.holders).toEqual([]); // no fd table shows the socket filter's program
    expect(prog.status).toBe('in-use');
    expect(prog.reasons[0]).toMatch(/^1 reference that pinleak cannot name/);
    const map = pinAt(live, '/filter_map');
    expect(map.status).toBe('in-use');
    expect(map.reasons[0]).toBe(`used by program ${prog.object!.id} (guard_filter), ${prog.reasons[0]}`);
    const flight = pinAt(live, '/flight_map');
    expect(flight.holders).toEqual([]);
    expect(flight.status).toBe('in-use');
    expect(flight.reasons[0]).toMatch(/^a file that pinleak cannot see still holds it/);
    expect(live.errors.filter((e) => e.scope === 'count guard')).toEqual([]);

    // without iterators the scan says what its verdicts lack, in JSON and at the top of the text
    const off = { db: t.db.db, env: { PINLEAK_ITERATORS: '0' } };
    const blind = pinleakJson(['scan', '--no-store'], off);
    expect(blind.errors).toContainEqual({ scope: 'count guard', message: expect.stringMatching(/^BPF iterators unavailable \(turned off by PINLEAK_ITERATORS=0\): verdicts rest on the references pinleak can name/) });
    expect(pinleak(['scan', '--no-store'], off).stdout).toMatch(/warning: count guard: BPF iterators unavailable/);

    // clean never removes them while those referrers live
    const cleaned = pinleakJson<CleanResult>(['clean', '--status', 'orphaned,leaked', '--instance', bpffs.dev, '--yes'], { db: t.db.db });
    expect(cleaned.removed).toEqual([]);

    await stop(filterHolder);
    await stop(flightHolder);
    const gone = scan();
    for (const p of ['/filter_prog', '/filter_map', '/flight_map']) {
      expect(pinAt(gone, p).status, p).toBe('orphaned');
    }
    const removed = pinleakJson<CleanResult>(['clean', '--status', 'orphaned', '--instance', bpffs.dev, '--yes'], { db: t.db.db });
    expect(removed.removed.map((p) => p.path).sort()).toEqual(['/filter_map', '/filter_prog', '/flight_map']);
  });
});
