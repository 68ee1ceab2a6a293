// procfs: pure parsers for the formats pinleak reads, and the readers that feed them.
// Every reader treats a vanished process as normal (returns null), never as an error.
import fs from 'node:fs';
import os from 'node:os';
import { libc, libcFunction } from './libc.js';
import { openAt } from './fs.js';
import { SC_CLK_TCK, SC_PAGESIZE, PROC_PID_INIT_INO, CLOCK_REALTIME, CLOCK_BOOTTIME } from './abi.js';

export const PROC = '/proc';

// ---- parsers (pure) ----

/** mountinfo escapes space, tab, newline and backslash as octal (\040 \011 \012 \134). */
export function unescapeMountField(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export interface MountinfoEntry {
  mountId: number;
  parentId: number;
  dev: string; // MAJ:MIN of the superblock
  root: string;
  mountPoint: string;
  mountOptions: string;
  optionalFields: string[];
  fstype: string;
  source: string;
  superOptions: string;
}

/** Parses /proc/<pid>/mountinfo (proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 3 > f.length) continue;
    out.push({
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      dev: f[2]!,
      root: unescapeMountField(f[3]!),
      mountPoint: unescapeMountField(f[4]!),
      mountOptions: f[5]!,
      optionalFields: f.slice(6, sep),
      fstype: f[sep + 1]!,
      source: unescapeMountField(f[sep + 2]!),
      superOptions: f.slice(sep + 3).join(' '),
    });
  }
  return out;
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** field 20: threads in the thread group (a zombie leader of live threads has more than 1) */
  threads: number;
  /** field 22: clock ticks after boot */
  startTime: number;
}

/** Parses /proc/<pid>/stat. The comm may hold spaces and parentheses: it ends at the last ')'. */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field 20 is rest[17]; field 22 is rest[19]
  const startTime = Number(rest[19]);
  if (!Number.isFinite(startTime)) return null;
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: Number(rest[1]),
    threads: Number(rest[17]),
    startTime,
  };
}

export interface BpfFdinfo {
  kind: 'map' | 'prog' | 'link' | null;
  /** map_id, prog_id or link_id, by kind (a link's fdinfo also has its program's prog_id) */
  id: number | null;
  memlock: number;
  /** maps: enum bpf_map_type */
  mapType?: number;
}

/** The few fields of a BPF fd's fdinfo a scan needs, in one pass (called once per pin and per held fd). */
export function parseBpfFdinfo(text: string): BpfFdinfo {
  let kind: BpfFdinfo['kind'] = null;
  let mapId: number | null = null;
  let progId: number | null = null;
  let linkId: number | null = null;
  let memlock = 0;
  let mapType = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', start);
    if (colon > start && colon < end) {
      const key = text.slice(start, colon);
      const value = () => Number(text.slice(colon + 1, end).trim());
      switch (key) {
        case 'map_type': kind = 'map'; mapType = value(); break;
        case 'link_type': kind = 'link'; break;
        case 'prog_type': if (kind === null) kind = 'prog'; break;
        case 'map_id': mapId = value(); break;
        case 'prog_id': progId = value(); break;
        case 'link_id': linkId = value(); break;
        case 'memlock': memlock = value(); break;
      }
    }
    start = end + 1;
  }
  const id = kind === 'map' ? mapId : kind === 'prog' ? progId : kind === 'link' ? linkId : null;
  return kind === 'map' ? { kind, id, memlock, mapType } : { kind, id, memlock };
}

/** `mnt:[4026531841]` -> 4026531841 */
export function parseNsLink(target: string, type = 'mnt'): number | null {
  const m = /^(\w+):\[(\d+)\]$/.exec(target);
  if (!m || m[1] !== type) return null;
  return Number(m[2]);
}

// ---- readers ----

// One reusable buffer for the many small procfs reads of a scan (stat, fdinfo, cgroup):
// readFileSync would fstat and allocate for each of them.
let scratch = Buffer.allocUnsafe(64 * 1024);

function readOrNull(path: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY);
  } catch {
    return null;
  }
  try {
    let len = 0;
    for (;;) {
      if (len === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, len);
        scratch = bigger;
      }
      const n = fs.readSync(fd, scratch, len, scratch.length - len, null);
      if (n === 0) break;
      len += n;
    }
    return scratch.toString('utf8', 0, len);
  } catch {
    return null; // the process exited while we read
  } finally {
    fs.closeSync(fd);
  }
}

function readlinkOrNull(path: string): string | null {
  try {
    return fs.readlinkSync(path);
  } catch {
    return null;
  }
}

export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync(PROC)) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(name));
  }
  return pids;
}

export function readStat(pid: number): ProcStat | null {
  const t = readOrNull(`${PROC}/${pid}/stat`);
  return t === null ? null : parseStat(t);
}

export function readMntNs(pid: number): number | null {
  const t = readlinkOrNull(`${PROC}/${pid}/ns/mnt`);
  return t === null ? null : parseNsLink(t);
}

export function readNetNs(pid: number | 'thread-self'): number | null {
  const t = readlinkOrNull(`${PROC}/${pid}/ns/net`);
  return t === null ? null : parseNsLink(t, 'net');
}

export function readMountinfo(pid: number): MountinfoEntry[] | null {
  const t = readOrNull(`${PROC}/${pid}/mountinfo`);
  return t === null ? null : parseMountinfo(t);
}

/** The link of one fd of a process (/proc/<pid>/fd/<fd>); null when it is closed or the process gone. */
export function readFdTarget(pid: number, fd: number): string | null {
  return readlinkOrNull(`${PROC}/${pid}/fd/${fd}`);
}

/**
 * fd number -> link target, for every fd of a process; null when it has gone; 'denied'
 * when it is there but its fds cannot be listed (no CAP_SYS_PTRACE over it, an LSM).
 */
export function readFdTargets(pid: number): Map<number, string> | null | 'denied' {
  let names: string[];
  try {
    names = fs.readdirSync(`${PROC}/${pid}/fd`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? 'denied' : null;
  }
  const out = new Map<number, string>();
  for (const n of names) {
    const t = readlinkOrNull(`${PROC}/${pid}/fd/${n}`);
    if (t !== null) out.set(Number(n), t);
  }
  return out;
}

export function readBpfFdinfo(pid: number | 'self', fd: number): BpfFdinfo | null {
  const t = pid === 'self' ? readSelfFdinfo(fd) : readOrNull(`${PROC}/${pid}/fdinfo/${fd}`);
  return t === null ? null : parseBpfFdinfo(t);
}

/** /proc/self/fdinfo, held: a fresh scan reads the fdinfo of every pin it opens (10,000 of them) */
let selfFdinfoDir: number | null = null;

/**
 * The fdinfo of one of our fds, opened relative to the held directory (no path walk) and
 * read once: the kernel writes it whole in one show() (single_open), so a read that leaves
 * room in the buffer got all of it (1.6 us less a pin than readOrNull's two reads by path).
 */
function readSelfFdinfo(fd: number): string | null {
  selfFdinfoDir ??= fs.openSync(`${PROC}/self/fdinfo`, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  let f: number;
  try {
    f = openAt(selfFdinfoDir, String(fd), fs.constants.O_RDONLY);
  } catch {
    return null; // not open (any more)
  }
  try {
    const n = fs.readSync(f, scratch, 0, scratch.length, null);
    if (n < scratch.length) return scratch.toString('utf8', 0, n);
  } catch {
    return null;
  } finally {
    fs.closeSync(f);
  }
  return readOrNull(`${PROC}/self/fdinfo/${fd}`); // as long as the buffer: read it whole the slow way
}

export function readCgroup(pid: number): string | null {
  return readOrNull(`${PROC}/${pid}/cgroup`);
}

export interface MapMapping {
  /** bytes mapped */
  size: number;
  /** file offset of the mapping (a ring buffer's producer pages start one page in) */
  offset: number;
}

/** A process's mappings of BPF maps (`anon_inode:bpf-map` in /proc/<pid>/maps). */
export function parseBpfMapMappings(text: string): MapMapping[] {
  const out: MapMapping[] = [];
  for (const line of text.split('\n')) {
    if (!line.endsWith('anon_inode:bpf-map')) continue;
    const [range, , offset] = line.split(/\s+/);
    const [lo, hi] = range!.split('-').map((x) => parseInt(x, 16));
    out.push({ size: hi! - lo!, offset: parseInt(offset!, 16) });
  }
  return out;
}

export function readBpfMapMappings(pid: number): MapMapping[] {
  const t = readOrNull(`${PROC}/${pid}/maps`);
  return t === null || !t.includes('anon_inode:bpf-map') ? [] : parseBpfMapMappings(t);
}

export function readBootId(): string {
  return (readOrNull(`${PROC}/sys/kernel/random/boot_id`) ?? '').trim();
}

const sysconfCache = new Map<number, number>();
function sysconf(name: number, fallback: number): number {
  let v = sysconfCache.get(name);
  if (v === undefined) {
    try {
      const fn = libc().func('long sysconf(int name)');
      v = Number(fn(name)) || fallback;
    } catch {
      v = fallback;
    }
    sysconfCache.set(name, v);
  }
  return v;
}

/** sysconf(_SC_CLK_TCK): the unit of a process's start time. */
export const clockTicks = () => sysconf(SC_CLK_TCK, 100);
/** sysconf(_SC_PAGESIZE) */
export const pageSize = () => sysconf(SC_PAGESIZE, 4096);

const clockGettime = libcFunction<(clock: number, ts: Buffer) => number>('int clock_gettime(int clock, _Out_ uint8_t *ts)');
const timespec = Buffer.alloc(16);
/** A clock's time in ns (struct timespec: tv_sec, tv_nsec, 64-bit each on the 64-bit hosts pinleak runs on). */
function clockNs(clock: number): bigint {
  if (clockGettime()(clock, timespec) !== 0) throw new Error(`clock_gettime(${clock}) failed`);
  const LE = os.endianness() === 'LE';
  const sec = LE ? timespec.readBigInt64LE(0) : timespec.readBigInt64BE(0);
  const nsec = LE ? timespec.readBigInt64LE(8) : timespec.readBigInt64BE(8);
  return sec * 1_000_000_000n + nsec;
}

/**
 * When the host booted, in ms since the epoch: the wall clock less CLOCK_BOOTTIME, read
 * back to back (to the microsecond, where /proc/uptime gives centiseconds: a program's
 * loadedAt and a process's start then come out the same at every scan).
 */
export function bootEpochMs(): number {
  const boot1 = clockNs(CLOCK_BOOTTIME);
  const real = clockNs(CLOCK_REALTIME);
  const boot2 = clockNs(CLOCK_BOOTTIME);
  return Number(real - (boot1 + boot2) / 2n) / 1e6;
}

export function pidMax(): number {
  return Number((readOrNull(`${PROC}/sys/kernel/pid_max`) ?? '4194304').trim());
}

/** st_dev (glibc dev_t encoding) -> "MAJ:MIN" as mountinfo prints it. */
export function devString(dev: number | bigint): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** Effective capabilities of this process (CapEff of /proc/self/status). */
export function effectiveCapabilities(): bigint {
  const t = readOrNull(`${PROC}/self/status`) ?? '';
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(t);
  return m ? BigInt('0x' + m[1]) : 0n;
}

/** In the initial pid namespace (PROC_PID_INIT_INO); anywhere else, the host's processes are hidden. */
export function inInitPidNamespace(): boolean {
  const t = readlinkOrNull(`${PROC}/self/ns/pid`);
  return t !== null && parseNsLink(t, 'pid') === PROC_PID_INIT_INO;
}
