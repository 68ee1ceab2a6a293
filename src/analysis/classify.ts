// Statuses, creators and owners (SPEC section 2): pure functions over one scan, the
// history of earlier snapshots of the same boot, the owner catalog and the user config.
import { objectKey, type Container, type Creator, type Holder, type KernelRef, type Owner, type Pin, type ScannedPin, type Status, type UsedBy } from '../model.js';
import { liveness, rootsOf, unexplainedReason, usedByIndex, type Liveness, type Unexplained } from './liveness.js';
import { matchOwner, pathPid as pathPidOf, type OwnerMatch, type OwnerRule } from './owners.js';
import { staleOf, staleReason, type StaleRecord } from './stale.js';
import { matchIgnore, type Config } from './config.js';
import { inheritOwners, type CatalogOwner } from './objects.js';


export interface LiveProcess {
  pid: number;
  startTime: number;
  comm: string;
}

export interface Sighting {
  pid: number;
  startTime: number;
  comm: string;
  /** stored snapshot it was first seen in; null for the scan being classified */
  snapshotId: number | null;
  container: Container | null;
  source?: 'watch' | 'run' | 'run-window' | 'history';
  /** source watch: when the recorder saw the pin made (ms since the epoch) */
  pinnedAtMs?: number;
}

/** A time `pinleak watch` was recording every pin of this boot (SPEC section 2, evidence 1). */
export interface WatchCoverage {
  fromMs: number;
  untilMs: number;
  pid: number;
  /** pins the recorder saw but could not queue during the session */
  drops: number;
}

export interface ClassifyContext {
  processes: Map<number, LiveProcess>;
  /** `${kind}:${id}` -> holders now */
  holders: Map<string, Holder[]>;
  /** map id -> why a holder by mmap is uncertain */
  mmapNotes: Map<number, string>;
  /** every link on the host: a link whose target exists keeps its program alive */
  links: Map<number, { id: number; defunct: boolean }>;
  /** every reference the scan named (programs' maps, links, attachments, map entries, ...) */
  refs: KernelRef[];
  /** what the count guard found that nothing named explains (empty when it could not run) */
  unexplained: Map<string, Unexplained>;
  /** `${kind}:${id}` -> creators recorded by `pinleak run` (evidence 1) */
  recorded: Map<string, Sighting>;
  /** `${kind}:${id}` -> the recorder's successful pins of the object, oldest first (evidence 1, before `recorded`) */
  pinRecords?: Map<string, Sighting[]>;
  /** when a watch recorded every pin of this boot */
  watchCoverage?: WatchCoverage[];
  /** `${kind}:${id}` -> holders of earlier snapshots of this boot, first sighting each (evidence 2) */
  history: Map<string, Sighting[]>;
  bootEpochMs: number;
  clockTicks: number;
  pidMax: number;
  catalog: OwnerRule[];
  config: Config;
  /** object key -> the start of its unbroken run of stale stored snapshots of this boot */
  staleRuns: Map<string, StaleRecord>;
  /** when the scan was taken (ISO): a new stale run starts then */
  takenAt: string;
  /** the catalog's owner of every object the scan read (by pin paths and names): live ones pass theirs on */
  objectOwners?: Map<string, CatalogOwner>;
}

/** Wall-clock start of a process, from its start time in clock ticks after boot. */
export function startedAtMs(ctx: Pick<ClassifyContext, 'bootEpochMs' | 'clockTicks'>, startTime: number): number {
  return ctx.bootEpochMs + (startTime / ctx.clockTicks) * 1000;
}

/** Start times and ctimes come from different clocks at tick resolution; allow two ticks and rounding. */
function toleranceMs(ctx: Pick<ClassifyContext, 'clockTicks'>): number {
  return (2 * 1000) / ctx.clockTicks + 5;
}

/** Did this process exist when the pin was made? */
export function existedAt(ctx: Pick<ClassifyContext, 'bootEpochMs' | 'clockTicks'>, startTime: number, ctimeMs: number): boolean {
  return startedAtMs(ctx, startTime) <= ctimeMs + toleranceMs(ctx);
}

export function isAlive(ctx: Pick<ClassifyContext, 'processes'>, pid: number, startTime: number | null): boolean {
  const p = ctx.processes.get(pid);
  return !!p && startTime !== null && p.startTime === startTime;
}

/** Which objects something alive reaches, from the context's holders, links and references. */
export function liveObjects(ctx: Pick<ClassifyContext, 'holders' | 'links' | 'refs' | 'unexplained'>): Liveness {
  const { roots, fallback } = rootsOf(ctx.holders, ctx.links.values(), ctx.unexplained);
  return liveness(roots, ctx.refs, fallback);
}

export function classifyPins(pins: ScannedPin[], ctx: ClassifyContext): Pin[] {
  const live = liveObjects(ctx);
  const usedBy = usedByIndex(ctx.refs);
  const inherited = usedOwners(ctx, live);
  return pins.map((p) => classifyPin(p, ctx, live, usedBy, inherited));
}

/**
 * Issue 16 item 3: a pin the catalog cannot place, whose object a known tool's live object
 * uses (its program, its link), belongs to that tool. Only live referrers count: such a pin
 * is then alive too, so its owner never turns a leak into a persistent pin.
 */
function usedOwners(ctx: ClassifyContext, live: Liveness): Map<string, { owner: CatalogOwner; ref: KernelRef }> {
  return ctx.objectOwners ? inheritOwners(ctx.objectOwners, ctx.refs, (k) => live.live.has(k)) : new Map();
}

function classifyPin(
  p: ScannedPin, ctx: ClassifyContext, live: Liveness, usedByIdx: Map<string, UsedBy[]>,
  inherited: Map<string, { owner: CatalogOwner; ref: KernelRef }>,
): Pin {
  const o = p.object;
  const k = o ? objectKey(o.kind, o.id) : null;
  const holders = k ? ctx.holders.get(k) ?? [] : [];
  const reasons: string[] = [];
  const pathPid = pathPidOf(p.path, ctx.pidMax);
  const { owner, match } = ownerOf(p, ctx, pathPid, k ? inherited.get(k) : undefined);
  const keptOnPurpose = match?.persistent ? `${match.tool} keeps its pins on purpose (${match.matched})` : null;
  const creator = o ? creatorOf(p, ctx, holders, pathPid) : null;
  const unrecorded = o && creator?.source !== 'watch' ? unrecordedReason(p, ctx) : null;
  // asked only of a pin nothing uses: an ignore rule never changes what a used pin is
  let ignore: ReturnType<typeof matchIgnore> = null;
  let status: Status;

  if (p.preload) {
    status = 'persistent';
    reasons.push(p.error
      ? `kernel preload iterator (CONFIG_BPF_PRELOAD), kept at every bpffs root; it does not open as a BPF object (${p.error.replace(/^cannot open: /, '')})`
      : 'kernel preload iterator (CONFIG_BPF_PRELOAD): the kernel keeps it at every bpffs root');
  } else if (!o) {
    status = 'unreadable';
    reasons.push(p.error ?? 'the pin could not be read');
  } else if (holders.length) {
    status = 'held';
    for (const h of holders.slice(0, 3)) {
      reasons.push(h.fds.length ? `held by pid ${h.pid} (${h.comm}) fd ${h.fds.join(',')}` : `mmapped by pid ${h.pid} (${h.comm})`);
    }
    if (holders.length > 3) reasons.push(`and ${holders.length - 3} more processes`);
    const note = o.kind === 'map' ? ctx.mmapNotes.get(o.id) : undefined;
    if (note) reasons.push(note);
  } else if (o.kind !== 'link' && live.live.has(k!)) {
    status = 'in-use';
    reasons.push(live.live.get(k!)!);
  } else if (o.kind === 'link' && ctx.unexplained.has(k!)) {
    // Nothing names a link's referrers but files and pins: what the kernel counts beyond
    // those is a holder pinleak cannot see (an fd in flight), so the link is not orphaned.
    status = 'in-use';
    reasons.push(unexplainedReason(ctx.unexplained.get(k!)!));
  } else {
    // Nothing alive reaches it: only bpffs pins keep it.
    reasons.push(o.kind === 'link'
      ? 'pinned link that no process holds: its attachment lives on with nobody managing it'
      : 'no process holds it and nothing alive in the kernel uses it; only bpffs pins keep it');
    const defunct = o.kind === 'link' && o.defunct;
    ignore = matchIgnore(ctx.config, { instance: p.instance, path: p.path, objectName: o.name ?? null });
    if (ignore) {
      status = 'persistent';
      reasons.push(`ignored by config rule${ignore.reason ? `: ${ignore.reason}` : ''}`);
    } else if (defunct) {
      status = 'leaked';
      reasons.push(`its ${o.type} link target is gone: the link is defunct`);
    } else if (keptOnPurpose) {
      status = 'persistent';
      reasons.push(keptOnPurpose);
    } else if (creator && !creator.alive && creator.source === 'run-window') {
      // Pinned while `run` ran its command, never seen held by it: on a busy host another
      // process may have pinned it in that window, so timing alone never makes a leak.
      status = 'orphaned';
      reasons.push(`${creatorReason(creator)}; only the time points at it, so who made the pin is not known for sure`);
    } else if (creator && !creator.alive) {
      status = 'leaked';
      reasons.push(creatorReason(creator));
    } else {
      status = 'orphaned';
      reasons.push(creator ? `creator pid ${creator.pid} (${creator.comm ?? '?'}) is still running` : 'who created it is not known');
    }
  }
  // What uses a pin comes first, then why it persists (an in-use catalog pin stays in-use:
  // persistent is for pins nothing uses, SPEC section 2); never "owner: x" beside it.
  if (keptOnPurpose && (status === 'held' || status === 'in-use')) reasons.push(keptOnPurpose);
  else if (owner.tool && status !== 'persistent') reasons.push(`owner: ${owner.tool}${owner.via ? ` (${owner.via})` : ''}`);
  const used = holders.length > 0 || (k !== null && live.live.has(k));
  const stale = staleOf(status === 'persistent' && !ignore && !p.preload && !!keptOnPurpose, used, k ? ctx.staleRuns.get(k) : undefined, ctx.takenAt);
  if (stale) reasons.push(staleReason(stale, ctx.takenAt));
  if (unrecorded) reasons.push(unrecorded);

  return {
    instance: p.instance,
    path: p.path,
    mountPaths: p.mountPaths,
    inode: p.inode,
    createdAt: new Date(p.ctimeMs).toISOString(),
    uid: p.uid,
    gid: p.gid,
    mode: p.mode.toString(8).padStart(4, '0'),
    object: o ? { kind: o.kind, id: o.id, name: o.name, type: o.type, memlockBytes: o.memlockBytes } : null,
    holders,
    usedBy: k ? usedByIdx.get(k) ?? [] : [],
    status,
    reasons,
    owner,
    creator,
    error: p.error,
    stale,
  };
}

function creatorReason(c: Creator): string {
  if (c.source === 'watch') {
    const where = c.container ? ` in ${c.container.id ? `container ${c.container.id.slice(0, 12)}` : c.container.runtime}` : '';
    return `pinned by ${c.pid} (${c.comm ?? '?'})${where} at ${c.pinnedAt?.slice(11, 19) ?? '?'}, exited`;
  }
  const who = `creator ${c.pid} (${c.comm ?? 'unknown command'})`;
  if (c.source === 'run') return `${who} recorded by pinleak run has exited`;
  if (c.source === 'run-window') return `${who}, run by pinleak run while the pin was made, has exited`;
  if (c.source === 'history') return `${who} seen in snapshot ${c.firstSeenSnapshot ?? 'now'} has exited`;
  return `${who} named in the pin path has exited${c.startTime === null ? ' (the pid is free or reused)' : ''}`;
}

function ownerOf(
  p: ScannedPin, ctx: ClassifyContext, pid: number | null, inherited?: { owner: CatalogOwner; ref: KernelRef },
): { owner: Owner; match: OwnerMatch | null } {
  const m = matchOwner(ctx.catalog, p.path, p.object?.name ?? null);
  let alive: boolean | null = null;
  if (pid !== null) {
    const proc = ctx.processes.get(pid);
    alive = !!proc && existedAt(ctx, proc.startTime, p.ctimeMs);
  }
  if (!m && inherited) {
    // a live referrer's owner names the tool, but never makes the pin persistent (no match)
    return { owner: { tool: inherited.owner.tool, persistent: inherited.owner.persistent, pathPid: pid, pathPidAlive: alive, via: inherited.ref.what }, match: null };
  }
  return { owner: { tool: m?.tool ?? null, persistent: m?.persistent ?? false, pathPid: pid, pathPidAlive: alive }, match: m };
}

/** A creator from a sighting of it (a record of `pinleak run`, a holder seen now or in a stored snapshot). */
function creatorFrom(ctx: ClassifyContext, s: Sighting, source: NonNullable<Sighting['source']>): Creator {
  return {
    pid: s.pid, startTime: s.startTime, comm: s.comm, alive: isAlive(ctx, s.pid, s.startTime),
    firstSeenSnapshot: s.snapshotId, source, container: s.container,
  };
}

/** The earlier of two sightings: stored snapshots before the current scan, then the earlier start. */
const sightedBefore = (a: Sighting, b: Sighting): boolean =>
  ((a.snapshotId ?? Infinity) - (b.snapshotId ?? Infinity) || a.startTime - b.startTime) < 0;

/** SPEC section 2: run records, then history, then a pid in the path (`pathPid`: pathPid() of the pin's path). */
export function creatorOf(p: ScannedPin, ctx: ClassifyContext, holdersNow: Holder[], pathPid = pathPidOf(p.path, ctx.pidMax)): Creator | null {
  const o = p.object!;
  const k = objectKey(o.kind, o.id);
  const pinned = recordedPin(ctx.pinRecords?.get(k), p.ctimeMs, ctx);
  if (pinned) return { ...creatorFrom(ctx, pinned, 'watch'), pinnedAt: new Date(pinned.pinnedAtMs!).toISOString() };
  const rec = ctx.recorded.get(k);
  if (rec) return creatorFrom(ctx, rec, rec.source === 'run-window' ? 'run-window' : 'run');

  // the earliest sighting of a process that existed when the pin was made: stored history
  // first, then the holders now (each process once)
  const history = ctx.history.get(k);
  let earliest: Sighting | null = null;
  const consider = (c: Sighting) => {
    if (existedAt(ctx, c.startTime, p.ctimeMs) && (!earliest || sightedBefore(c, earliest))) earliest = c;
  };
  for (const s of history ?? []) consider(s);
  for (const h of holdersNow) {
    if (!history?.some((c) => c.pid === h.pid && c.startTime === h.startTime)) {
      consider({ pid: h.pid, startTime: h.startTime, comm: h.comm, snapshotId: null, container: h.container });
    }
  }
  if (earliest) return creatorFrom(ctx, earliest, 'history');

  const pid = pathPid;
  if (pid !== null) {
    const proc = ctx.processes.get(pid);
    if (proc && existedAt(ctx, proc.startTime, p.ctimeMs)) {
      return { pid, startTime: proc.startTime, comm: proc.comm, alive: true, firstSeenSnapshot: null, source: 'path', container: null };
    }
    // Not alive, or the pid now belongs to a process started after the pin: the creator exited.
    return { pid, startTime: null, comm: null, alive: false, firstSeenSnapshot: null, source: 'path', container: null };
  }
  return null;
}

/** Of the recorder's pins of an object, the one that made this pin: the last not after its ctime (else the first). */
function recordedPin(records: Sighting[] | undefined, ctimeMs: number, ctx: Pick<ClassifyContext, 'clockTicks'>): Sighting | null {
  if (!records?.length) return null;
  const before = records.filter((r) => (r.pinnedAtMs ?? 0) <= ctimeMs + toleranceMs(ctx));
  return before.at(-1) ?? records[0]!;
}

/** A pin made while a watch recorded every pin, yet with no record of its object: say so (it changes no status). */
function unrecordedReason(p: ScannedPin, ctx: ClassifyContext): string | null {
  const w = ctx.watchCoverage?.find((c) => c.fromMs <= p.ctimeMs && p.ctimeMs <= c.untilMs);
  if (!w) return null;
  const lost = w.drops ? `, or its record was among the ${w.drops} the recorder dropped` : '';
  return `made at ${new Date(p.ctimeMs).toISOString()} while pinleak watch (pid ${w.pid}) recorded every pin, yet no pin of this object was recorded: renamed or hard-linked from an older pin${lost}`;
}
