import { describe, expect, it } from 'vitest';
import {
  parseMountinfo, parseStat, parseBpfFdinfo, parseNsLink, unescapeMountField, devString,
} from '../../src/kernel/procfs.js';
import { kindOfFdTarget } from '../../src/kernel/bpf.js';
import { isLive } from '../../src/scan/processes.js';
import { partialReasons } from '../../src/scan/partial.js';
import { parseDelegation, mountsToWalk, pathBelowMount } from '../../src/scan/instances.js';

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '68 22 0:39 / /tmp/ns\\040bpf rw,relatime shared:40 - bpf bpf rw,mode=700',
  '69 22 0:39 /sub /mnt/with\\011tab\\012nl\\134bs rw,relatime - bpf bpf rw',
  '70 22 0:4 mnt:[4026532190] /run/ns/keep rw - nsfs nsfs rw',
  '71 22 0:40 / /sys/fs/bpf/tok rw,nosuid shared:2 master:1 - bpf none rw,delegate_cmds=map_create:prog_load,delegate_maps=any,delegate_progs=any,delegate_attachs=any',
  'garbage line',
].join('\n');

describe('mountinfo', () => {
  const m = parseMountinfo(MOUNTINFO);
  it('parses every well-formed line and skips garbage', () => {
    expect(m).toHaveLength(5);
  });
  it('unescapes octal escapes in mount points and roots', () => {
    expect(m[1]!.mountPoint).toBe('/tmp/ns bpf');
    expect(m[2]!.mountPoint).toBe('/mnt/with\ttab\nnl\\bs');
    expect(m[2]!.root).toBe('/sub');
    expect(unescapeMountField('a\\040b\\134c')).toBe('a b\\c');
    expect(unescapeMountField('no\\escape')).toBe('no\\escape');
  });
  it('reads fstype, dev, optional fields and super options', () => {
    expect(m[1]).toMatchObject({ mountId: 68, parentId: 22, dev: '0:39', fstype: 'bpf', superOptions: 'rw,mode=700', optionalFields: ['shared:40'] });
    expect(m[2]!.optionalFields).toEqual([]);
    expect(m[4]!.optionalFields).toEqual(['shared:2', 'master:1']);
  });
  it('recognises nsfs entries that keep a mount namespace alive', () => {
    expect(m[3]!.fstype).toBe('nsfs');
    expect(parseNsLink(m[3]!.root)).toBe(4026532190);
    expect(parseNsLink('net:[4026531840]')).toBeNull();
    expect(parseNsLink('pid:[4026531836]', 'pid')).toBe(4026531836);
  });
  it('parses BPF token delegation options', () => {
    expect(parseDelegation(m[4]!.superOptions)).toEqual({ cmds: 'map_create:prog_load', maps: 'any', progs: 'any', attachs: 'any' });
    expect(parseDelegation('rw,mode=700')).toBeNull();
  });
});

describe('stat', () => {
  it('handles a comm with spaces and parentheses', () => {
    const line = '4242 (otel (go) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 81200 1000 50 18446744073709551615';
    expect(parseStat(line)).toEqual({ pid: 4242, comm: 'otel (go) x', state: 'S', ppid: 1, threads: 3, startTime: 81200 });
  });
  it('handles a comm ending in ") "', () => {
    const line = '7 (a) b) R 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0';
    expect(parseStat(line)).toMatchObject({ pid: 7, comm: 'a) b', state: 'R', startTime: 555 });
  });
  it('rejects truncated lines', () => {
    expect(parseStat('12 (x')).toBeNull();
    expect(parseStat('12 (x) S 1')).toBeNull();
  });
});

describe('a live process', () => {
  // real lines from this kernel: an unreaped child, and a leader that called pthread_exit
  const zombie = parseStat('7173 (python3) Z 7132 7129 3133 0 -1 4227148 226 0 0 0 0 0 0 0 20 0 1 0 44763 0 0 18446744073709551615 0 0')!;
  const leaderOfLiveThreads = parseStat('7254 (zl) Z 1 7245 3133 0 -1 4227084 138 0 0 0 0 0 0 0 20 0 2 0 45462 0 0 18446744073709551615 0 0')!;
  it('is not a zombie: a zombie has exited, whoever has not reaped it', () => {
    expect(isLive(zombie)).toBe(false);
    expect(isLive({ state: 'X', threads: 1 })).toBe(false);
  });
  it('is any other state, and a zombie leader whose other threads still run', () => {
    for (const state of ['R', 'S', 'D', 'T', 't', 'I']) expect(isLive({ state, threads: 1 }), state).toBe(true);
    expect(isLive(leaderOfLiveThreads)).toBe(true);
  });
});

describe('partial', () => {
  const whole = { processes: new Map([[1, {} as never]]), unreadableProcesses: [], namespaces: [], instances: [], errors: [] };
  it('a scan in the host pid namespace that read everything is whole', () => {
    expect(partialReasons(whole, true)).toEqual([]);
  });
  it('names each blind spot: pid namespace, no processes, unreadable fds, namespaces, instances', () => {
    expect(partialReasons(whole, false)).toEqual([expect.stringMatching(/child pid namespace.*hostPID/)]);
    expect(partialReasons({ ...whole, processes: new Map() }, true)).toEqual(['no processes are visible']);
    expect(partialReasons({ ...whole, unreadableProcesses: [5, 6] }, true)).toEqual([expect.stringMatching(/the fds of 2 processes could not be read \(5, 6\)/)]);
    const ns = { mntNs: 9, reachedVia: 'process' as const, pids: [], processCount: 0, nsfsPaths: [], error: 'EACCES' };
    expect(partialReasons({ ...whole, namespaces: [ns] }, true)).toEqual(['1 mount namespace could not be read (9)']);
    expect(partialReasons({ ...whole, errors: [{ scope: 'instance 0:40', message: 'subtree unread' }] }, true))
      .toEqual(['1 bpffs instance could not be walked whole (0:40)']);
  });
});

describe('fdinfo', () => {
  it('map fdinfo', () => {
    const f = parseBpfFdinfo('pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1038\nmap_type:\t1\nkey_size:\t4\nvalue_size:\t8\nmax_entries:\t16\nmap_flags:\t0x0\nmap_extra:\t0x0\nmemlock:\t2048\nmap_id:\t26\nfrozen:\t0\n');
    expect(f).toEqual({ kind: 'map', id: 26, memlock: 2048, mapType: 1 });
  });
  it('prog fdinfo', () => {
    expect(parseBpfFdinfo('pos:\t0\nflags:\t02000002\nprog_type:\t8\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t97\nrun_time_ns:\t0\n').id).toBe(97);
  });
  it('link fdinfo carries a prog_id too: the link id is link_id', () => {
    expect(parseBpfFdinfo('pos:\t0\nlink_type:\tcgroup\nlink_id:\t89\nprog_tag:\tabc\nprog_id:\t97\ncgroup_id:\t1\nattach_type:\t0\n')).toEqual({ kind: 'link', id: 89, memlock: 0 });
  });
  it('link fd targets: bpf_link when created, bpf-link when re-opened', () => {
    expect(kindOfFdTarget('anon_inode:bpf_link')).toBe('link');
    expect(kindOfFdTarget('anon_inode:bpf-link')).toBe('link');
    expect(kindOfFdTarget('anon_inode:bpf-map')).toBe('map');
    expect(kindOfFdTarget('anon_inode:bpf-prog')).toBe('prog');
    expect(kindOfFdTarget('anon_inode:[eventpoll]')).toBeNull();
    expect(kindOfFdTarget('/sys/fs/bpf/x')).toBeNull();
  });
});

describe('devices and mounts', () => {
  it('turns st_dev into MAJ:MIN', () => {
    expect(devString(39)).toBe('0:39');
    expect(devString((254 << 8) | 1)).toBe('254:1');
    expect(devString(0x100000n << 12n)).toBe('0:1048576');
  });
  it('walks a whole-instance mount instead of a subdirectory mount of it', () => {
    const acc = (root: string, mountPoint: string) => ({ path: `/proc/1/root${mountPoint}`, readerPid: 1, nsPids: [1], mount: { mntNs: 1, mountId: 1, mountPoint, root, superOptions: 'rw' } });
    const groups = mountsToWalk([acc('/sub', '/a'), acc('/', '/b'), acc('/', '/c')]);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.map((g) => g.mount.mountPoint)).toEqual(['/b', '/c']);
    const apart = mountsToWalk([acc('/x', '/a'), acc('/y', '/b'), acc('/x/z', '/c')]);
    expect(apart.map((g) => g[0]!.mount.root)).toEqual(['/x', '/y']);
  });
  it('maps an instance path to each mount point that shows it', () => {
    expect(pathBelowMount('/app/m', '/', '/sys/fs/bpf')).toBe('/sys/fs/bpf/app/m');
    expect(pathBelowMount('/app/m', '/app', '/mnt')).toBe('/mnt/m');
    expect(pathBelowMount('/other/m', '/app', '/mnt')).toBeNull();
    expect(pathBelowMount('/application/m', '/app', '/mnt')).toBeNull();
  });
});

describe('bpf fdinfo, the fast path', () => {
  it('reads kind, id and memlock of each kind', () => {
    expect(parseBpfFdinfo('pos:\t0\nflags:\t02000002\nmap_type:\t1\nkey_size:\t4\nmemlock:\t2048\nmap_id:\t26\nfrozen:\t0\n')).toEqual({ kind: 'map', id: 26, memlock: 2048, mapType: 1 });
    expect(parseBpfFdinfo('prog_type:\t8\nprog_jited:\t1\nmemlock:\t4096\nprog_id:\t97\n')).toEqual({ kind: 'prog', id: 97, memlock: 4096 });
    expect(parseBpfFdinfo('link_type:\tcgroup\nlink_id:\t89\nprog_tag:\tabc\nprog_id:\t97\n')).toEqual({ kind: 'link', id: 89, memlock: 0 });
    expect(parseBpfFdinfo('pos:\t0\nflags:\t0\n')).toEqual({ kind: null, id: null, memlock: 0 });
    expect(parseBpfFdinfo('map_id:\t3')).toEqual({ kind: null, id: null, memlock: 0 });
  });
});
