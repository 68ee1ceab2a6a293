// A scan that cannot see the host (inside a child pid namespace, the likeliest
// misdeployment: a container without hostPID) is partial everywhere: stored so, said at
// the top of every view and in JSON, exported, refused by --fail-on-leak and by clean.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { worldForFile } from '../world/for-file.js';
import type { Agent, Mount } from '../world/world.js';
import { CLI, pinleak, pinleakJson } from '../helpers.js';
import type { SnapshotDoc } from '../../src/model.js';
import type { SnapshotListEntry } from '../../src/store/index.js';
import type { ScanError } from '../../src/model.js';
import type { Anchor } from '../../src/kernel/ns.js';
import { discoverNamespaces } from '../../src/scan/namespaces.js';
import { objectReader, walkInstance } from '../../src/scan/pins.js';
import { pidMax } from '../../src/kernel/procfs.js';

let bpffs: Mount;
let holder: Agent;
let heldId: number;
const REL = 'app/held-by-host';

const t = worldForFile(async ({ world }) => {
  bpffs = await world.mountBpffs('partial');
  holder = await world.spawnAgent();
  const map = await holder.call({ op: 'map', name: 'host_held' });
  heldId = map.id!;
  await holder.call({ op: 'pin', fd: map.fd!, path: path.join(bpffs.path, REL) });
});

/**
 * pinleak inside a new pid namespace with its own /proc, beside one other process (a
 * container's app): it sees the bpffs through that process, but not the host's holders.
 * The sleep dies with the namespace when pinleak (its init) exits.
 */
function blind(args: string[]) {
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'sh', '-c', 'sleep 120 & exec "$@"', 'sh', process.execPath, CLI, '--db', t.db.db, ...args],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 30, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const pinOf = (doc: SnapshotDoc) => doc.pins.find((p) => p.instance === bpffs.dev && p.path === `/${REL}`);

describe('a blind scan', () => {
  it('is stored as partial, with the reason, and the host process still holds its pin', () => {
    const r = blind(['scan', '--json', '--label', 'blind']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as SnapshotDoc;
    expect(doc.snapshot.partial).toBe(true);
    expect(doc.snapshot.partialReasons!.join(' ')).toMatch(/child pid namespace/);
    // the host's holder is invisible from in there: that is exactly why the view is partial;
    // only the kernel's count of the map's files still says something holds it
    expect(pinOf(doc)).toMatchObject({ holders: [], status: 'in-use' });
    expect(pinOf(doc)!.reasons[0]).toMatch(/^a file that pinleak cannot see still holds it/);
    expect(r.stderr).toMatch(/^PARTIAL VIEW: snapshot \d+ "blind" could not see the whole host:/);
    // a scan from the host sees the holder, and is whole
    const host = pinleakJson(['scan', '--no-store'], { db: t.db.db });
    expect(host.snapshot.partial).toBe(false);
    expect(host.snapshot.partialReasons).toEqual([]);
    expect(pinOf(host)?.holders.map((h) => h.pid)).toEqual([holder.pid]);
  });

  it('says so at the top of scan, pins, leaks and mounts, and in their JSON', () => {
    const text = blind(['scan', '--no-store']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^PARTIAL VIEW: this scan \(not stored\) could not see the whole host:$/);
    for (const cmd of ['pins', 'leaks', 'mounts']) {
      const r = pinleak([cmd, 'blind'], { db: t.db.db });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')[0], cmd).toMatch(/^PARTIAL VIEW: snapshot \d+ "blind" could not see the whole host:$/);
      expect(r.stdout, cmd).toMatch(/child pid namespace/);
      const doc = pinleakJson([cmd, 'blind'], { db: t.db.db });
      expect(doc.snapshot.partial, cmd).toBe(true);
    }
    const list = pinleakJson<{ snapshots: SnapshotListEntry[] }>(['snapshots'], { db: t.db.db }).snapshots;
    expect(list.find((s) => s.label === 'blind')?.partial).toBe(true);
    const quiet = blind(['scan', '--no-store', '--quiet']);
    expect(quiet.stdout).toBe('');
    expect(quiet.stderr).toMatch(/^pinleak: warning: this scan \(not stored\) is partial: .*child pid namespace/);
  });

  it('is exported as pinleak_scan_partial 1 (0 for a whole scan)', () => {
    const r = pinleak(['export', 'prometheus'], { db: t.db.db });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pinleak_scan_partial 1$/m);
    expect(pinleak(['scan', '--quiet'], { db: t.db.db }).code).toBe(0);
    expect(pinleak(['export', 'prometheus'], { db: t.db.db }).stdout).toMatch(/^pinleak_scan_partial 0$/m);
  });

  it('fails scan --fail-on-leak and leaks --fail-on-leak with exit 2, like gate', () => {
    const scan = blind(['scan', '--fail-on-leak', '--no-store', '--quiet']);
    expect(scan.code).toBe(2);
    expect(scan.stderr).toMatch(/^pinleak: this scan \(not stored\) could not see the whole host: .*--fail-on-leak does not judge it$/m);
    const leaks = pinleak(['leaks', 'blind', '--fail-on-leak'], { db: t.db.db });
    expect(leaks.code).toBe(2);
    expect(leaks.stderr).toMatch(/^pinleak: snapshot \d+ "blind" could not see the whole host: .*--fail-on-leak does not judge it\n$/);
    // a whole snapshot is judged as before
    expect([0, 1]).toContain(pinleak(['leaks', 'latest', '--fail-on-leak', '--quiet'], { db: t.db.db }).code);
  });

  it('is never cleaned: clean exits 2 and the held pin stays, stored view or fresh one, dry run or --yes', () => {
    const pinPath = path.join(bpffs.path, REL);
    const blindId = String(pinleakJson<{ snapshots: SnapshotListEntry[] }>(['snapshots'], { db: t.db.db }).snapshots.find((s) => s.label === 'blind')!.id);
    const wholeId = String(pinleakJson(['scan'], { db: t.db.db }).snapshot.id);
    const attempts: [string, ReturnType<typeof blind>][] = [
      // the stored view is partial: refused from the host too, before any scan
      ['stored partial, from the host', pinleak(['clean', blindId, '--status', 'orphaned', '--path', `/${REL}`, '--yes'], { db: t.db.db })],
      ['stored partial, blind', blind(['clean', blindId, '--status', 'orphaned,leaked', '--yes'])],
      ['stored partial, dry run', blind(['clean', blindId, '--status', 'orphaned'])],
      // a whole stored view, but the fresh scan clean re-checks with is blind
      ['fresh partial', blind(['clean', wholeId, '--status', 'orphaned,leaked', '--yes'])],
    ];
    for (const [what, r] of attempts) {
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stdout, what).toBe('');
      expect(r.stderr, what).toMatch(/^pinleak: .*could not see the whole host: .*clean never acts on a partial view/);
    }
    expect(fs.existsSync(pinPath)).toBe(true);
    expect(holder.alive).toBe(true);
    const after = pinleakJson(['scan', '--no-store'], { db: t.db.db });
    expect(pinOf(after)).toMatchObject({ status: 'held', object: { id: heldId } });
    // and there is no flag to override it
    expect(pinleak(['clean', '--help']).stdout).not.toMatch(/--force|--allow-partial/);
  });
});

describe('a namespace or instance whose processes all exit during the scan', () => {
  const listed = (procs: [number, number][]) => ({
    processes: new Map(procs.map(([pid, mntNs]) => [pid, { pid, startTime: 1, comm: 'p', ppid: 1, mntNs, cgroup: null }])),
    unreadable: [], bpfFds: [], nsFds: [], mapMappings: new Map(),
  });

  it('is gone, not a blind spot: no view, no error, so the snapshot stays whole', async () => {
    const vanished = pidMax() + 1; // listed, then gone: no such process can exist
    const errors: ScanError[] = [];
    const views = await discoverNamespaces(listed([[vanished, 4026599999]]), [], errors);
    expect(views).toEqual([]);
    expect(errors).toEqual([]);

    const mount = { mntNs: 4026599999, mountId: 1, mountPoint: '/sys/fs/bpf', root: '/', superOptions: 'rw' };
    const instance = { dev: '0:9999', mounts: [mount], delegation: null, pinCount: 0, memlockBytes: 0, error: null };
    const walked = walkInstance({ instance, accesses: [{ path: `/proc/${vanished}/root/sys/fs/bpf`, readerPid: vanished, nsPids: [vanished], mount }] },
      objectReader(), errors, { symlinksSkipped: 0, foreignSkipped: 0 });
    expect(walked).toBeNull();
    expect(errors).toEqual([]);
  });

  it('but kept by an nsfs mount, it is entered through that mount, whichever is read first', async () => {
    const detached = await t.world.namespaceWithoutProcess({ mapName: 'kept_ns' });
    const vanished = pidMax() + 1;
    const host = process.pid; // in the namespace that has the nsfs bind mount
    for (const order of [[[vanished, detached.mntNs], [host, t.world.hostMntNs]], [[host, t.world.hostMntNs], [vanished, detached.mntNs]]] as [number, number][][]) {
      const anchors: Anchor[] = [];
      try {
        const errors: ScanError[] = [];
        const views = await discoverNamespaces(listed(order), anchors, errors);
        expect(errors).toEqual([]);
        expect(views.find((v) => v.ns.mntNs === detached.mntNs)?.ns).toMatchObject({ reachedVia: 'nsfs', pids: [], error: null });
      } finally {
        for (const a of anchors) a.release();
      }
    }
  });
});
