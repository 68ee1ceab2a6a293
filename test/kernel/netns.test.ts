// Every network namespace is read, however it is kept alive: by an fd only, by a process
// only, by an nsfs bind mount in another mount namespace only. And a namespace with more
// than a scan may read is reported, its programs assumed attached (never a false leak).
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { type Agent, type Mount, type World } from '../world/world.js';
import { pinleakJson } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import { readNetnsAttachments } from '../../src/scan/network.js';
import { attachmentRefs } from '../../src/analysis/attachments.js';
import type { Pin, ScanError, SnapshotDoc } from '../../src/model.js';

let world: World;
let bpffs: Mount;
let doc: SnapshotDoc;
const ids: Record<string, number> = {};
const inos: Record<string, number> = {};
let budgetNs: { name: string; path: string; ino: number };

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const at = (name: string) => path.join(bpffs.path, name);
const inoOf = (file: string) => Number(fs.statSync(file).ino);
const pinOf = (name: string): Pin => {
  const p = doc.pins.find((x) => x.instance === bpffs.dev && x.path === `/${name}`);
  if (!p) throw new Error(`no pin /${name}`);
  return p;
};

/** A veth pair in the namespace at `nsFile`, with a clsact ingress filter on the first running `pin`. */
function vethWithFilter(nsFile: string, dev: string, pin: string): void {
  const net = (cmd: string, ...args: string[]) => sh('nsenter', [`--net=${nsFile}`, cmd, ...args]);
  net('ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`);
  net('tc', 'qdisc', 'add', 'dev', dev, 'clsact');
  net('tc', 'filter', 'add', 'dev', dev, 'ingress', 'pref', '5', 'bpf', 'da', 'pinned', pin);
}

worldForFile(async (t) => {
  world = t.world;
  bpffs = await world.mountBpffs('netns');
  const loader = await world.spawnAgent();
  for (const name of ['by_fd', 'by_process', 'by_foreign_mount', 'budget', 'by_block']) {
    const p = await loader.call({ op: 'prog', name, progType: 'sched_cls' });
    ids[name] = p.id!;
    await loader.call({ op: 'pin', fd: p.fd!, path: at(name) });
  }
  await loader.exit();

  // 1. kept only by an fd: its /run/netns mount is deleted while a process holds it open
  const fdNs = await world.makeNetns();
  vethWithFilter(fdNs.path, 'fdv0', at('by_fd'));
  const holder: Agent = await world.spawnAgent();
  await holder.call({ op: 'openFile', path: fdNs.path });
  sh('ip', ['netns', 'delete', fdNs.name]);
  inos.by_fd = fdNs.ino;

  // 2. only a process is in it (unshare -n), nothing bound
  const inside = await world.spawnAgent({ unshareNet: true });
  const procNs = `/proc/${inside.pid}/ns/net`;
  vethWithFilter(procNs, 'prv0', at('by_process'));
  inos.by_process = inoOf(procNs);

  // 3. only an nsfs bind mount, made in another mount namespace on a tmpfs only that one has
  const other = await world.spawnAgent({ unshareMount: true });
  const inOther = (...args: string[]) => sh('nsenter', [`--mount=/proc/${other.pid}/ns/mnt`, ...args]);
  const dir = path.join(world.dir, 'netns-elsewhere');
  fs.mkdirSync(dir);
  inOther('mount', '-t', 'tmpfs', 'tmpfs', dir);
  inOther('touch', `${dir}/net`);
  inOther('unshare', `--net=${dir}/net`, 'true');
  // gone with the agent's mount namespace when cleanup kills it
  const foreign = `/proc/${other.pid}/root${dir}/net`;
  if (fs.existsSync(`${dir}/net`)) throw new Error(`${dir}/net is visible in our mount namespace too`);
  vethWithFilter(foreign, 'fmv0', at('by_foreign_mount'));
  inos.by_foreign_mount = inoOf(foreign);

  // 4. more filters than the budget used below lets a scan read
  budgetNs = await world.makeNetns();
  vethWithFilter(budgetNs.path, 'bgv0', at('budget'));
  for (let pref = 6; pref < 12; pref++) {
    sh('tc', ['-n', budgetNs.name, 'filter', 'add', 'dev', 'bgv0', 'ingress', 'pref', String(pref), 'bpf', 'da', 'pinned', at('budget')]);
  }

  // 5. one filter on a block two devices share: one filter, one reference
  const blockNs = await world.makeNetns();
  sh('ip', ['-n', blockNs.name, 'link', 'add', 'bk0', 'type', 'veth', 'peer', 'name', 'bk1']);
  for (const dev of ['bk0', 'bk1']) sh('tc', ['-n', blockNs.name, 'qdisc', 'add', 'dev', dev, 'ingress_block', '22', 'clsact']);
  sh('tc', ['-n', blockNs.name, 'filter', 'add', 'block', '22', 'pref', '4', 'bpf', 'da', 'pinned', at('by_block')]);
  inos.by_block = blockNs.ino;

  doc = pinleakJson(['scan', '--no-store'], { db: t.db.db });
});

describe('network namespaces, however they are kept alive', () => {
  it.each(['by_fd', 'by_process', 'by_foreign_mount'])('a filter in a namespace kept %s is seen', (name) => {
    const p = pinOf(name);
    const dev = { by_fd: 'fdv0', by_process: 'prv0', by_foreign_mount: 'fmv0' }[name]!;
    expect(p.status).toBe('in-use');
    expect(p.usedBy).toHaveLength(1);
    expect(p.usedBy[0]!.via).toBe(`tc ingress of ${dev} in netns ${inos[name]} (filter pref 5, cls_bpf)`);
  });

  it('a filter on a block shared by two devices is one reference, named once', () => {
    const p = pinOf('by_block');
    expect(p.status).toBe('in-use');
    expect(p.usedBy).toHaveLength(1);
    expect(p.usedBy[0]!.via).toMatch(new RegExp(`^tc ingress of bk[01] in netns ${inos.by_block} \\(filter pref 4, cls_bpf, shared block 22\\)$`));
  });

  it('a namespace with more than the budget is a scan error, and its programs are assumed attached', () => {
    const errors: ScanError[] = [];
    const needs = { tc: true, act: false, xdp: true, tcx: true, netns: true };
    const target = { ino: budgetNs.ino, files: [budgetNs.path] };
    const full = readNetnsAttachments(target, needs, errors)!;
    expect(errors).toEqual([]);
    expect(full.tc.map((f) => f.pref)).toEqual([5, 6, 7, 8, 9, 10, 11]);

    const cut = readNetnsAttachments(target, needs, errors, { messages: 8, bytes: 1 << 20, ms: 3000 })!;
    expect(errors).toEqual([{ scope: `netns ${budgetNs.ino}`, message: 'filters of bgv0: over the message budget' }]);
    expect(cut.incomplete).toEqual({ progTypes: ['sched_cls', 'xdp'], why: 'filters of bgv0: over the message budget' });
    const refs = attachmentRefs([cut], [], new Map([[ids.budget!, 'sched_cls'], [1, 'flow_dissector']]));
    expect(refs.filter((r) => r.count === null).map((r) => [r.to.id, r.what])).toEqual([
      [ids.budget, `possibly attached in netns ${budgetNs.ino}, which could not be read in full (filters of bgv0: over the message budget)`],
    ]);
  });

  it('a namespace whose every way in has gone is not read (nor an error)', () => {
    const errors: ScanError[] = [];
    expect(readNetnsAttachments({ ino: 1, files: ['/run/netns/pltest-no-such'] }, { tc: true, act: false, xdp: false, tcx: false, netns: false }, errors)).toBeNull();
    expect(errors).toEqual([]);
  });
});
