#!/usr/bin/env node
// npm run bench: pinleak on a large host, built for real (SPEC section 6, issue 5).
//
//   node scripts/bench.mjs [--pins 10000] [--instances 50] [--ns-instances N] [--procs 1000]
//                          [--runs 5] [--warmup 1] [--history-runs 5] [--workers 4] [--prog-share 0.1]
//                          [--scales [1000,10000,35000]] [--no-baseline] [--json-out FILE]
//
// For each scale (default: just --pins) it builds a world (scripts/bench-world.mjs:
// bpffs instances in the host and in private mount namespaces with a live process,
// pins made by a few workers calling the kernel layer, idle processes), then times
//   pinleak scan --db <fresh temp db> --json --timings     (--runs times, fresh db each)
//   bpftool -f -j map show                                  (--runs times, interleaved)
//   pinleak scan --db <the last run's db> --json --timings  (--history-runs times)
// and then runs `pinleak watch --timings` on that db (scripts/bench-resident.mjs: the
// periodic scan of the resident pinleak, as watch itself times it, after its first),
// after --warmup untimed runs of each, and tears the world down. Wall time is measured
// around the whole process (node startup included: what cron pays). Peak RSS is the
// kernel's ru_maxrss of the pinleak process, read with `/usr/bin/time -f %M` (wait4
// rusage; both pinleak and bpftool run under it, so they pay the same wrapper cost),
// or, without /usr/bin/time, with scripts/bench-rss.mjs (getrusage in-process).
// With several scales it also measures a world with 0 pins (same instances and
// processes: the fixed cost) unless --no-baseline, and reports time per pin.
//
// Needs root. Everything it makes is torn down at the end, on failure, and on
// SIGINT/SIGTERM/SIGHUP; it checks that no mount is left under its temp dirs.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWorld, teardownAll, readMountinfo } from './bench-world.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist/pinleak.mjs');
const RSS_WRAPPER = fileURLToPath(new URL('./bench-rss.mjs', import.meta.url));
const TARGET = { wallMs: 2000, rssMB: 250, ratio: 1, perPinSpread: 1.5 };
// issue 12's ratios to bpftool's median: the cron case (into the previous scan's db), a
// fresh db, and the resident scan (no process start); and its peak RSS
const TARGET12 = { history: 2.5, fresh: 4, resident: 1, rssMB: 150 };
const RESIDENT = fileURLToPath(new URL('./bench-resident.mjs', import.meta.url));
// pinleak runs under the bench's own node (process.execPath): every figure is of this
// Node.js, so it is printed beside them (scripts/with-node 24 node scripts/bench.mjs: Node 24)
const NODE = process.version;

// ---- arguments ----

const DEFAULT_SCALES = '1000,10000,35000';
function parseArgs(argv) {
  const o = {
    pins: 10000, instances: 50, nsInstances: null, procs: 1000, runs: 5, warmup: 1, historyRuns: null,
    workers: 4, scales: null, baseline: true, jsonOut: null, progShare: 0.1,
  };
  const num = (flag, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) die(`${flag} needs a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes('=') ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--pins': o.pins = num(flag, value()); break;
      case '--instances': o.instances = num(flag, value()); break;
      case '--ns-instances': o.nsInstances = num(flag, value()); break;
      case '--procs': o.procs = num(flag, value()); break;
      case '--runs': o.runs = num(flag, value()); break;
      case '--warmup': o.warmup = num(flag, value()); break;
      case '--history-runs': o.historyRuns = num(flag, value()); break;
      case '--workers': o.workers = Math.max(1, num(flag, value())); break;
      case '--scales': {
        // bare --scales means the standard list
        const v = inline ?? (argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : DEFAULT_SCALES);
        o.scales = v.split(',').filter(Boolean).map((s) => num('--scales', s.trim()));
        break;
      }
      case '--prog-share': {
        // the share of pins that are programs: 0.27 is issue 12's node (9,500 of 35,000)
        const v = Number(value());
        if (!(v > 0 && v <= 1)) die(`--prog-share needs a fraction in (0, 1], got ${JSON.stringify(v)}`);
        o.progShare = v;
        break;
      }
      case '--no-baseline': o.baseline = false; break;
      case '--json-out': o.jsonOut = value(); break;
      case '--help': case '-h':
        process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 25)
          .map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default: die(`unknown argument ${argv[i]} (--help lists them)`);
    }
  }
  if (o.runs < 1) die('--runs must be at least 1');
  if (o.instances < 1) die('--instances must be at least 1');
  if (o.nsInstances === null) o.nsInstances = Math.floor(o.instances / 2);
  // the cron case is judged on its median like the others: as many runs (one was noise)
  if (o.historyRuns === null) o.historyRuns = o.runs;
  if (o.nsInstances > o.instances) die('--ns-instances cannot exceed --instances');
  return o;
}

function die(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// ---- statistics ----

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const r1 = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);
function stats(xs) {
  if (!xs.length) return { n: 0, min: null, median: null, max: null, values: [] };
  return { n: xs.length, min: r1(Math.min(...xs)), median: r1(median(xs)), max: r1(Math.max(...xs)), values: xs.map(r1) };
}

// ---- tools ----

function findBpftool() {
  for (const p of ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/usr/local/sbin/bpftool']) if (fs.existsSync(p)) return p;
  log('bpftool not found; installing it with apt-get (package bpftool)');
  const r = spawnSync('apt-get', ['install', '-y', 'bpftool'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status === 0 && fs.existsSync('/usr/sbin/bpftool')) return '/usr/sbin/bpftool';
  die('bpftool is needed (apt-get install bpftool)');
}

function versionOf(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

const TIME_BIN = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/** Host-wide CPU ticks from /proc/stat: busy (everything but idle and iowait) and steal. */
function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq, steal: steal ?? 0, idle: idle + iowait };
}
const TICK_MS = 10; // USER_HZ is 100 on Linux

/** Runs argv with stdout/stderr to files; wall ms around the process; peak RSS (KiB) when measured. */
function timed(argv, files, { rssVia }) {
  const outFd = fs.openSync(files.out, 'w');
  const errFd = fs.openSync(files.err, 'w');
  let full = argv;
  if (rssVia === 'time') full = [TIME_BIN, '-f', '%M %U %S', '-o', files.rss, ...argv];
  const c0 = cpuTicks();
  const t0 = performance.now();
  const r = spawnSync(full[0], full.slice(1), { stdio: ['ignore', outFd, errFd] });
  const wallMs = performance.now() - t0;
  const c1 = cpuTicks();
  fs.closeSync(outFd);
  fs.closeSync(errFd);
  if (r.signal === 'SIGINT' || r.signal === 'SIGTERM' || r.signal === 'SIGHUP') throw new Interrupted(r.signal);
  let rssKiB = null;
  let cpuMs = null;
  if (rssVia) {
    try {
      // "maxrss_KiB user_s sys_s"; /usr/bin/time writes "Command exited with non-zero status N" first on failure
      const f = fs.readFileSync(files.rss, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      if (Number.isFinite(f[0])) rssKiB = f[0];
      if (Number.isFinite(f[1]) && Number.isFinite(f[2])) cpuMs = (f[1] + f[2]) * 1000;
    } catch {
      /* no figures */
    }
  }
  // what else ran on the machine meanwhile, in cores: host busy time minus the process's own
  const busyMs = (c1.busy - c0.busy) * TICK_MS;
  const otherCores = cpuMs === null ? null : Math.max(0, busyMs - cpuMs) / wallMs;
  const stealCores = ((c1.steal - c0.steal) * TICK_MS) / wallMs;
  return { wallMs, status: r.status, signal: r.signal, error: r.error?.message ?? null, rssKiB, cpuMs, otherCores, stealCores };
}

class Interrupted extends Error {
  constructor(sig) {
    super(`interrupted by ${sig}`);
  }
}

// ---- one pinleak run ----

function parseTimings(stderr) {
  const m = /timings \(ms\): (.*)$/m.exec(stderr);
  if (!m) return null;
  const out = {};
  for (const part of m[1].split(', ')) {
    const sp = part.trim().lastIndexOf(' ');
    const v = Number(part.trim().slice(sp + 1));
    if (sp > 0 && Number.isFinite(v)) out[part.trim().slice(0, sp)] = v;
  }
  return out;
}

function runPinleak(world, db, tag) {
  const files = {
    out: path.join(world.dir, `pinleak-${tag}.json`), err: path.join(world.dir, `pinleak-${tag}.err`),
    rss: path.join(world.dir, `pinleak-${tag}.rss`),
  };
  const args = ['scan', '--db', db, '--json', '--timings'];
  const r = TIME_BIN
    ? timed([process.execPath, CLI, ...args], files, { rssVia: 'time' })
    : timed([process.execPath, RSS_WRAPPER, files.rss, ...args], files, { rssVia: 'wrapper' });
  const stderr = fs.readFileSync(files.err, 'utf8');
  const run = {
    tag, wallMs: r.wallMs, cpuMs: r.cpuMs, otherCores: r.otherCores, stealCores: r.stealCores,
    status: r.status, signal: r.signal, rssKiB: r.rssKiB, timings: parseTimings(stderr),
  };
  if (r.status !== 0 || r.error) run.failure = `${r.error ?? `exit ${r.status ?? r.signal}`}: ${stderr.trim().slice(-2000)}`;
  else if (stderr.replace(/^timings \(ms\).*$/m, '').trim()) run.stderr = stderr.trim().slice(-2000);
  if (!run.failure) {
    try {
      run.check = checkSnapshot(world, JSON.parse(fs.readFileSync(files.out, 'utf8')));
      run.durationMs = run.check.durationMs;
    } catch (e) {
      run.failure = `stdout is not a snapshot document: ${e.message}`;
    }
  }
  for (const f of Object.values(files)) fs.rmSync(f, { force: true });
  return run;
}

/** What pinleak saw of the world: every pin of ours, in every namespace, no errors. */
function checkSnapshot(world, doc) {
  const devs = world.devs;
  const ours = doc.pins.filter((p) => devs.has(p.instance));
  // bpffs puts the CONFIG_BPF_PRELOAD iterators maps.debug / progs.debug at every root
  const preload = ours.filter((p) => /(^|\/)(maps|progs)\.debug$/.test(p.path));
  const made = ours.filter((p) => /\/(map|prog)_\d+$/.test(p.path));
  const byKind = {};
  const byStatus = {};
  let pinErrors = 0;
  for (const p of made) {
    const k = p.object?.kind ?? 'none';
    byKind[k] = (byKind[k] ?? 0) + 1;
    byStatus[p.status] = (byStatus[p.status] ?? 0) + 1;
    if (p.error) pinErrors++;
  }
  const heldFound = made.filter((p) => p.holders?.length).length;
  const nsSeen = new Set(doc.namespaces.map((n) => n.mntNs));
  const instancesSeen = new Set(doc.instances.map((i) => i.dev));
  // errors about this world vs about other people's bpffs/namespaces on the same host
  const mine = (text) => text.includes(world.dir) || [...devs].some((d) => new RegExp(`(^|[^\\d:])${d}([^\\d:]|$)`).test(text))
    || world.namespaces.some((n) => text.includes(String(n.mntNs)) || new RegExp(`(^|\\D)${n.pid}(\\D|$)`).test(text));
  const errors = {};
  const foreignErrors = {};
  for (const e of doc.errors ?? []) {
    const text = `${e.scope}: ${e.message}`;
    const key = text.replace(/\d{3,}/g, 'N').slice(0, 300);
    const into = mine(text) ? errors : foreignErrors;
    into[key] = (into[key] ?? 0) + 1;
  }
  const pinErrorSamples = [...new Set(made.filter((p) => p.error).map((p) => p.error.replace(/\d{3,}/g, 'N')))].slice(0, 5);
  return {
    durationMs: doc.snapshot?.durationMs ?? null,
    summary: doc.summary,
    ourPinsFound: made.length, ourPinsExpected: world.expected.pins, preloadPins: preload.length,
    maps: byKind.map ?? 0, progs: byKind.prog ?? 0, noObject: byKind.none ?? 0,
    byStatus, heldFound, heldExpected: world.expected.held,
    namespacesMissing: world.namespaces.filter((n) => !nsSeen.has(n.mntNs)).length,
    instancesMissing: [...devs].filter((d) => !instancesSeen.has(d)).length,
    errorCount: (doc.errors ?? []).length, errors, foreignErrors, pinErrors, pinErrorSamples,
  };
}

function runBpftool(world, bpftool, tag) {
  const files = {
    out: path.join(world.dir, `bpftool-${tag}.json`), err: path.join(world.dir, `bpftool-${tag}.err`),
    rss: path.join(world.dir, `bpftool-${tag}.rss`),
  };
  const r = timed([bpftool, '-f', '-j', 'map', 'show'], files, { rssVia: TIME_BIN ? 'time' : null });
  const run = { tag, wallMs: r.wallMs, cpuMs: r.cpuMs, status: r.status, rssKiB: r.rssKiB };
  if (r.status !== 0 || r.error) run.failure = `${r.error ?? `exit ${r.status ?? r.signal}`}: ${fs.readFileSync(files.err, 'utf8').trim().slice(-1000)}`;
  else {
    try {
      const maps = JSON.parse(fs.readFileSync(files.out, 'utf8'));
      const ours = maps.filter((m) => typeof m.name === 'string' && /^bm\d+_/.test(m.name));
      run.check = {
        maps: maps.length, pinned: maps.filter((m) => m.pinned?.length).length,
        ourMaps: ours.length, ourMapsPinnedVisible: ours.filter((m) => m.pinned?.length).length,
      };
    } catch (e) {
      run.failure = `output is not JSON: ${e.message}`;
    }
  }
  for (const f of Object.values(files)) fs.rmSync(f, { force: true });
  return run;
}

// ---- kernel object accounting: wait for a torn-down world's objects to be freed ----

let bpfLayer = null;
async function kernelObjects() {
  bpfLayer ??= await import(new URL('../dist/kernel/bpf.js', import.meta.url).href);
  const maps = bpfLayer.allIds('map');
  const progs = bpfLayer.allIds('prog');
  return { count: maps.length + progs.length, maxMap: Math.max(0, ...maps), maxProg: Math.max(0, ...progs), maps, progs };
}

/** Objects named like the bench's (bm<i>_<k>, bp<i>_<k>) among ids above the baseline's. */
function benchObjectsLeft(now, base) {
  let left = 0;
  for (const [kind, ids, above] of [['map', now.maps, base.maxMap], ['prog', now.progs, base.maxProg]]) {
    for (const id of ids) {
      if (id <= above) continue;
      const fd = bpfLayer.fdById(kind, id);
      if (fd === null) continue;
      try {
        if (/^b[mp]\d+_\d+$/.test(bpfLayer.objectInfo(fd, kind)?.name ?? '')) left++;
      } catch {
        /* went away */
      } finally {
        bpfLayer.closeFd(fd);
      }
    }
  }
  return left;
}

/** Waits until the kernel has freed a torn-down world's maps and programs (freeing is deferred). */
async function waitForObjectsFreed(base, timeoutMs = 60_000) {
  const t0 = performance.now();
  let last = -1;
  let stableSince = performance.now();
  for (;;) {
    const now = await kernelObjects();
    if (now.count <= base.count) return { ms: Math.round(performance.now() - t0), left: 0 };
    if (now.count !== last) {
      last = now.count;
      stableSince = performance.now();
    } else if (performance.now() - stableSince > 1500) {
      // no longer shrinking: what is left may be other people's objects, made meanwhile
      const left = benchObjectsLeft(now, base);
      if (left === 0 || performance.now() - t0 > timeoutMs) return { ms: Math.round(performance.now() - t0), left };
      stableSince = performance.now();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- one scale ----

async function measureScale(o, pins, { bpftool, withBpftool }) {
  const baseline = await kernelObjects();
  log(`--- ${pins} pins: building the world`);
  const world = await buildWorld({
    pins, instances: o.instances, nsInstances: o.nsInstances, procs: o.procs, workers: o.workers, progShare: o.progShare, log,
  });
  const res = {
    dir: world.dir, node: NODE, pins, instances: o.instances, nsInstances: o.nsInstances, idleProcesses: o.procs,
    world: {
      expected: world.expected, buildMs: world.buildMs, processesOnHost: world.processesOnHost,
      namespaces: world.namespaces.length, hostInstances: world.hostInstances.length,
    },
  };
  res.loadavg = { before: os.loadavg(), after: null };
  try {
    const fresh = [];
    const history = [];
    const bpf = [];
    const warm = [];
    let n = 0;
    const freshDb = () => path.join(world.dir, 'db', `fresh-${++n}.db`);
    const dropDb = (db) => { for (const s of ['', '-wal', '-shm', '-journal']) fs.rmSync(db + s, { force: true }); };

    for (let i = 0; i < o.warmup; i++) {
      const db = freshDb();
      warm.push(runPinleak(world, db, `warmup-${i}`));
      dropDb(db);
      if (withBpftool) runBpftool(world, bpftool, `warmup-${i}`);
    }
    let lastDb = null;
    for (let i = 0; i < o.runs; i++) {
      const db = freshDb();
      const run = runPinleak(world, db, `fresh-${i}`);
      fresh.push(run);
      if (lastDb) dropDb(lastDb);
      lastDb = db;
      if (withBpftool) bpf.push(runBpftool(world, bpftool, `run-${i}`));
      log(`  run ${i + 1}/${o.runs}: pinleak ${Math.round(run.wallMs)} ms${run.rssKiB ? `, ${(run.rssKiB * 1024 / 1e6).toFixed(0)} MB` : ''}`
        + `${run.failure ? ` FAILED: ${run.failure.split('\n')[0]}` : ''}${withBpftool ? `; bpftool ${Math.round(bpf.at(-1).wallMs)} ms` : ''}`);
    }
    // history: into the db of the last fresh run, which holds that run's snapshot
    for (let i = 0; i < o.historyRuns && lastDb; i++) {
      const run = runPinleak(world, lastDb, `history-${i}`);
      history.push(run);
      log(`  history run ${i + 1}/${o.historyRuns} (db with ${i + 1} snapshot(s)): pinleak ${Math.round(run.wallMs)} ms`
        + `${run.failure ? ` FAILED: ${run.failure.split('\n')[0]}` : ''}`);
    }
    // resident: scans in one process after its first (modules, iterators and db warm)
    if (lastDb) {
      const r = spawnSync(process.execPath, [RESIDENT, '--db', lastDb, '--scans', String(o.runs + 1)], { encoding: 'utf8', maxBuffer: 16 << 20 });
      if (r.status === 0) {
        const out = JSON.parse(r.stdout);
        res.resident = {
          scans: out.warm.length, wallMs: stats(out.warm.map((w) => w.wallMs)), scanMs: stats(out.warm.map((w) => w.scanMs)),
          storeMs: stats(out.warm.map((w) => w.storeMs)), cpuMs: stats(out.warm.map((w) => w.cpuMs)), rssMB: r1(out.rssMB),
          phasesMedianMs: Object.fromEntries(Object.keys(out.warm[0].timings).map((k) => [k, r1(median(out.warm.map((w) => w.timings[k])))])),
        };
        log(`  watch's periodic scans (its --timings, after its first): median ${Math.round(res.resident.wallMs.median)} ms`);
      } else res.resident = { failure: `exit ${r.status ?? r.signal}: ${r.stderr.trim().slice(-1000)}` };
    }
    if (lastDb) dropDb(lastDb);

    const ok = (runs) => runs.filter((r) => !r.failure);
    res.pinleak = summarizeRuns(fresh);
    res.pinleakHistory = summarizeRuns(history);
    res.pinleakWarmup = warm.map((r) => ({ wallMs: r1(r.wallMs), failure: r.failure ?? null }));
    if (withBpftool) {
      res.bpftool = {
        wallMs: stats(ok(bpf).map((r) => r.wallMs)),
        rssMB: stats(ok(bpf).filter((r) => r.rssKiB).map((r) => (r.rssKiB * 1024) / 1e6)),
        cpuMs: stats(ok(bpf).map((r) => r.cpuMs).filter((v) => v !== null && v !== undefined)),
        check: ok(bpf)[0]?.check ?? null,
        failures: bpf.filter((r) => r.failure).map((r) => r.failure),
      };
      const pm = res.pinleak.wallMs.median;
      const bm = res.bpftool.wallMs.median;
      res.ratioOfMedians = pm !== null && bm ? Math.round((pm / bm) * 100) / 100 : null;
      const ratio = (x) => (x !== null && x !== undefined && bm ? Math.round((x / bm) * 100) / 100 : null);
      res.ratios = { fresh: res.ratioOfMedians, history: ratio(res.pinleakHistory.wallMs.median), resident: ratio(res.resident?.wallMs?.median) };
    }
  } finally {
    res.loadavg.after = os.loadavg();
    const t = world.teardown();
    const freed = await waitForObjectsFreed(baseline);
    res.teardown = { ...t, objectsFreedWaitMs: freed.ms, objectsStillAllocated: freed.left };
    log(`  torn down: ${t.problems.length ? `PROBLEMS: ${t.problems.join('; ')}` : 'clean'}; `
      + `mounts left under ${world.dir}: ${t.mountsLeft}; kernel objects freed after ${freed.ms} ms`
      + `${freed.left ? ` (${freed.left} of the bench's objects still allocated after 60 s)` : ''}`);
  }
  return res;
}

function summarizeRuns(runs) {
  const ok = runs.filter((r) => !r.failure);
  const phaseNames = [];
  for (const r of ok) for (const k of Object.keys(r.timings ?? {})) if (!phaseNames.includes(k)) phaseNames.push(k);
  const phases = {};
  for (const k of phaseNames) phases[k] = r1(median(ok.map((r) => r.timings?.[k]).filter((v) => v !== undefined)));
  const phaseSums = ok.filter((r) => r.timings).map((r) => Object.values(r.timings).reduce((a, b) => a + b, 0));
  // errors and checks: the union over runs (they should not differ)
  const errors = {};
  const foreignErrors = {};
  for (const r of ok) for (const [k, v] of Object.entries(r.check?.errors ?? {})) errors[k] = Math.max(errors[k] ?? 0, v);
  for (const r of ok) for (const [k, v] of Object.entries(r.check?.foreignErrors ?? {})) foreignErrors[k] = Math.max(foreignErrors[k] ?? 0, v);
  const worst = (k) => Math.max(0, ...ok.map((r) => r.check?.[k] ?? 0));
  return {
    runs: runs.length,
    wallMs: stats(ok.map((r) => r.wallMs)),
    durationMs: stats(ok.map((r) => r.durationMs).filter((v) => v !== null && v !== undefined)),
    phasesMedianMs: phases,
    phaseSumMs: stats(phaseSums),
    rssMB: stats(ok.filter((r) => r.rssKiB).map((r) => (r.rssKiB * 1024) / 1e6)),
    cpuMs: stats(ok.map((r) => r.cpuMs).filter((v) => v !== null && v !== undefined)),
    // other processes' CPU while pinleak ran, in cores (2 = the whole machine), and hypervisor steal
    backgroundCores: stats(ok.map((r) => r.otherCores).filter((v) => v !== null && v !== undefined).map((v) => Math.round(v * 100) / 100)),
    stealCores: stats(ok.map((r) => r.stealCores).filter((v) => v !== null && v !== undefined).map((v) => Math.round(v * 100) / 100)),
    check: ok[0]?.check ? {
      ...ok[0].check, errors, foreignErrors, errorCount: worst('errorCount'), pinErrors: worst('pinErrors'),
      ourPinsFound: Math.min(...ok.map((r) => r.check?.ourPinsFound ?? 0)), heldFound: Math.min(...ok.map((r) => r.check?.heldFound ?? 0)),
      namespacesMissing: worst('namespacesMissing'), instancesMissing: worst('instancesMissing'),
    } : null,
    failures: runs.filter((r) => r.failure).map((r) => `${r.tag}: ${r.failure}`),
    stderr: [...new Set(ok.map((r) => r.stderr).filter(Boolean))],
  };
}

// ---- printing ----

const fmtMs = (x) => (x === null || x === undefined ? '-' : x >= 100 ? `${Math.round(x)} ms` : `${x.toFixed(1)} ms`);
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const verdict = (ok) => (ok === null ? 'n/a' : ok ? 'MET' : 'NOT MET');

function printScale(s, main) {
  const out = [];
  out.push('');
  out.push(`== ${s.pins} pins on Node.js ${s.node}, ${s.instances} bpffs instances (${s.nsInstances} in private mount namespaces with a live process), `
    + `${s.idleProcesses} idle processes (${s.world.processesOnHost} processes on the host) ==`);
  out.push(`   world: ${s.world.expected.maps} maps, ${s.world.expected.progs} programs (${s.world.expected.progsWithMap} using a map), `
    + `${s.world.expected.held} objects held by live processes; built in ${(s.world.buildMs.total / 1000).toFixed(1)} s`);
  const row = (name, st, extra = '') => out.push(`   ${pad(name, 44)}${lpad(fmtMs(st.min), 10)}${lpad(fmtMs(st.median), 10)}${lpad(fmtMs(st.max), 10)}  ${extra}`);
  out.push(`   ${pad('wall time, whole process', 44)}${lpad('min', 10)}${lpad('median', 10)}${lpad('max', 10)}`);
  row(`pinleak scan --json --timings (fresh db) x${s.pinleak.wallMs.n}`, s.pinleak.wallMs);
  if (s.pinleakHistory.wallMs.n) row(`pinleak scan, into the previous run's db x${s.pinleakHistory.wallMs.n}`, s.pinleakHistory.wallMs);
  if (s.bpftool) row(`bpftool -f -j map show x${s.bpftool.wallMs.n}`, s.bpftool.wallMs);
  if (s.ratioOfMedians !== null && s.ratioOfMedians !== undefined) {
    out.push(`   ratio of medians pinleak / bpftool: ${s.ratioOfMedians.toFixed(2)}x`);
  }
  if (s.pinleak.cpuMs.n) {
    out.push(`   CPU time (user+sys) median: pinleak ${fmtMs(s.pinleak.cpuMs.median)}${s.pinleakHistory.cpuMs.n ? `, history run ${fmtMs(s.pinleakHistory.cpuMs.median)}` : ''}`
      + `${s.bpftool?.cpuMs.n ? `, bpftool ${fmtMs(s.bpftool.cpuMs.median)}` : ''}; load average before/after: ${s.loadavg.before.map((x) => x.toFixed(2)).join(' ')} / ${s.loadavg.after.map((x) => x.toFixed(2)).join(' ')}`);
  }
  if (s.pinleak.backgroundCores.n) {
    const bg = s.pinleak.backgroundCores;
    out.push(`   other processes' CPU while pinleak ran: median ${bg.median} cores, max ${bg.max} of ${os.cpus().length} (steal median ${s.pinleak.stealCores.median})`
      + `${bg.median > 0.25 ? '  <- the machine was busy: wall times are inflated, CPU times less so' : ''}`);
  }
  const ph = s.pinleak.phasesMedianMs;
  if (Object.keys(ph).length) {
    out.push(`   pinleak phases, median of ${s.pinleak.wallMs.n} (ms): ${Object.entries(ph).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    out.push(`     sum of phases (scan+classify+store in-process) median ${fmtMs(s.pinleak.phaseSumMs.median)}; `
      + `snapshot durationMs (scan+classify) median ${fmtMs(s.pinleak.durationMs.median)}; `
      + `rest of the wall time (node startup, module load, JSON output, exit) ~${fmtMs(s.pinleak.wallMs.median - s.pinleak.phaseSumMs.median)}`);
  }
  if (s.resident?.wallMs) {
    row(`pinleak watch, periodic scan+store x${s.resident.scans}`, s.resident.wallMs, `(CPU median ${fmtMs(s.resident.cpuMs.median)}, store ${fmtMs(s.resident.storeMs.median)}, peak RSS ${s.resident.rssMB} MB)`);
    out.push(`   watch phases, from its --timings (ms): ${Object.entries(s.resident.phasesMedianMs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } else if (s.resident?.failure) out.push(`   FAILURE (resident): ${s.resident.failure}`);
  if (s.ratios) {
    const r = (k) => (s.ratios[k] === null ? '-' : `${s.ratios[k].toFixed(2)}x (target <= ${TARGET12[k]}x: ${verdict(s.ratios[k] <= TARGET12[k])})`);
    out.push(`   issue 12, median / bpftool median: into the previous db ${r('history')}; fresh db ${r('fresh')}; resident ${r('resident')}`);
  }
  const hph = s.pinleakHistory.phasesMedianMs;
  if (Object.keys(hph).length) out.push(`   history-run phases (ms): ${Object.entries(hph).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (s.pinleak.rssMB.n) out.push(`   peak RSS of pinleak (${TIME_BIN ? '/usr/bin/time -f %M' : 'getrusage in-process'}): min ${s.pinleak.rssMB.min} MB, median ${s.pinleak.rssMB.median} MB, max ${s.pinleak.rssMB.max} MB`
    + `${s.pinleakHistory.rssMB.n ? `; history run ${s.pinleakHistory.rssMB.max} MB` : ''}${s.bpftool?.rssMB.n ? `; bpftool ${s.bpftool.rssMB.median} MB` : ''}`);
  const c = s.pinleak.check;
  if (c) {
    out.push(`   pinleak saw ${c.ourPinsFound}/${c.ourPinsExpected} of our pins (${c.maps} maps, ${c.progs} progs, ${c.noObject} without object; `
      + `+${c.preloadPins} preload iterator pins), ${c.heldFound}/${c.heldExpected} with holders; `
      + `missing: ${c.namespacesMissing} namespaces, ${c.instancesMissing} instances; statuses ${JSON.stringify(c.byStatus)}`);
    out.push(`   snapshot: ${c.summary?.namespaces} namespaces, ${c.summary?.instances} instances, ${c.summary?.pins} pins; `
      + `errors[] (most in one run): ${c.errorCount}${c.pinErrors ? `; pins with error: ${c.pinErrors} (${c.pinErrorSamples.join(' | ')})` : ''}`);
    for (const [k, v] of Object.entries(c.errors)) out.push(`     error about the bench's own world x${v}: ${k}`);
    for (const [k, v] of Object.entries(c.foreignErrors)) out.push(`     error about something else on the host (not the bench's) x${v}: ${k}`);
  }
  if (s.bpftool?.check) {
    const b = s.bpftool.check;
    out.push(`   bpftool listed ${b.maps} maps (${b.ourMaps} ours), ${b.pinned} with a pinned path (${b.ourMapsPinnedVisible} of ours: host-namespace instances only)`);
  }
  for (const f of [...s.pinleak.failures, ...s.pinleakHistory.failures, ...(s.bpftool?.failures ?? [])]) out.push(`   FAILURE: ${f}`);
  for (const e of [...s.pinleak.stderr, ...s.pinleakHistory.stderr]) out.push(`   pinleak stderr: ${e}`);
  if (main) {
    const wall = s.pinleak.wallMs.median;
    const rss = s.pinleak.rssMB.max;
    out.push(`   targets (SPEC 6):`);
    out.push(`     scan+classify+store < ${TARGET.wallMs} ms: wall median ${fmtMs(wall)} -> ${verdict(wall === null ? null : wall < TARGET.wallMs)}`
      + ` (in-process phases alone ${fmtMs(s.pinleak.phaseSumMs.median)} -> ${verdict(s.pinleak.phaseSumMs.median === null ? null : s.pinleak.phaseSumMs.median < TARGET.wallMs)})`);
    out.push(`     peak RSS < ${TARGET.rssMB} MB: max ${rss ?? '-'} MB -> ${verdict(rss === null ? null : rss < TARGET.rssMB)}`
      + `; issue 12's < ${TARGET12.rssMB} MB -> ${verdict(rss === null ? null : rss < TARGET12.rssMB)}`);
    if (s.ratioOfMedians !== null && s.ratioOfMedians !== undefined) {
      out.push(`     pinleak median <= bpftool median: ${s.ratioOfMedians.toFixed(2)}x -> ${verdict(s.ratioOfMedians <= TARGET.ratio)}`);
    }
  }
  return out.join('\n');
}

function scalingSummary(scales, base) {
  const rows = scales.filter((s) => s.pins > 0 && s.pinleak.wallMs.median !== null).map((s) => {
    const wall = s.pinleak.wallMs.median;
    const sum = s.pinleak.phaseSumMs.median;
    const cpu = s.pinleak.cpuMs.median;
    const baseCpu = base?.pinleak.cpuMs.median ?? null;
    return {
      pins: s.pins, wallMedianMs: wall, phaseSumMedianMs: sum, cpuMedianMs: cpu,
      usCpuPerPin: cpu === null ? null : r1((cpu * 1000) / s.pins),
      usCpuPerPinNet: cpu === null || baseCpu === null ? null : r1(((cpu - baseCpu) * 1000) / s.pins),
      backgroundCores: s.pinleak.backgroundCores.median,
      usPerPin: r1((wall * 1000) / s.pins),
      usPerPinPhases: sum === null ? null : r1((sum * 1000) / s.pins),
      usPerPinNet: base ? r1(((wall - base.pinleak.wallMs.median) * 1000) / s.pins) : null,
      usPerPinPhasesNet: base && sum !== null && base.pinleak.phaseSumMs.median !== null ? r1(((sum - base.pinleak.phaseSumMs.median) * 1000) / s.pins) : null,
      rssMaxMB: s.pinleak.rssMB.max,
      bpftoolMedianMs: s.bpftool?.wallMs.median ?? null, ratioOfMedians: s.ratioOfMedians ?? null,
    };
  });
  const spread = (k) => {
    const xs = rows.map((r) => r[k]).filter((x) => x !== null && x > 0);
    return xs.length >= 2 ? Math.round((Math.max(...xs) / Math.min(...xs)) * 100) / 100 : null;
  };
  const marginal = [];
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1];
    const b = rows[i];
    if (b.pins !== a.pins) {
      marginal.push({
        from: a.pins, to: b.pins, usPerPin: r1(((b.wallMedianMs - a.wallMedianMs) * 1000) / (b.pins - a.pins)),
        usCpuPerPin: a.cpuMedianMs === null || b.cpuMedianMs === null ? null : r1(((b.cpuMedianMs - a.cpuMedianMs) * 1000) / (b.pins - a.pins)),
      });
    }
  }
  return {
    baseline: base ? {
      pins: 0, wallMedianMs: base.pinleak.wallMs.median, phaseSumMedianMs: base.pinleak.phaseSumMs.median,
      cpuMedianMs: base.pinleak.cpuMs.median, phasesMedianMs: base.pinleak.phasesMedianMs, backgroundCores: base.pinleak.backgroundCores.median,
    } : null,
    rows, marginal,
    spread: {
      usPerPin: spread('usPerPin'), usPerPinPhases: spread('usPerPinPhases'), usPerPinNet: spread('usPerPinNet'),
      usPerPinPhasesNet: spread('usPerPinPhasesNet'), usCpuPerPin: spread('usCpuPerPin'), usCpuPerPinNet: spread('usCpuPerPinNet'),
    },
  };
}

function printScaling(sc) {
  const out = ['', `== scaling on Node.js ${NODE}: time per pin (pinleak median / pins) ==`];
  if (sc.baseline) {
    out.push(`   fixed cost, same instances and processes with 0 pins: wall median ${fmtMs(sc.baseline.wallMedianMs)}, phases ${fmtMs(sc.baseline.phaseSumMedianMs)}, `
      + `CPU ${fmtMs(sc.baseline.cpuMedianMs)} (phases ${Object.entries(sc.baseline.phasesMedianMs).filter(([, v]) => v >= 1).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  }
  const v = (x) => (x === null || x === undefined ? '-' : String(x));
  out.push(`   ${pad('pins', 7)}${lpad('wall', 9)}${lpad('us/pin', 8)}${lpad('net', 7)}${lpad('phases', 9)}${lpad('us/pin', 8)}${lpad('net', 7)}`
    + `${lpad('CPU', 9)}${lpad('us/pin', 8)}${lpad('net', 7)}${lpad('RSS', 8)}${lpad('bpftool', 9)}${lpad('ratio', 8)}${lpad('busy', 6)}`);
  for (const r of sc.rows) {
    out.push(`   ${pad(r.pins, 7)}${lpad(fmtMs(r.wallMedianMs).replace(' ms', ''), 9)}${lpad(v(r.usPerPin), 8)}${lpad(v(r.usPerPinNet), 7)}`
      + `${lpad(fmtMs(r.phaseSumMedianMs).replace(' ms', ''), 9)}${lpad(v(r.usPerPinPhases), 8)}${lpad(v(r.usPerPinPhasesNet), 7)}`
      + `${lpad(fmtMs(r.cpuMedianMs).replace(' ms', ''), 9)}${lpad(v(r.usCpuPerPin), 8)}${lpad(v(r.usCpuPerPinNet), 7)}`
      + `${lpad(r.rssMaxMB === null ? '-' : `${Math.round(r.rssMaxMB)}MB`, 8)}${lpad(fmtMs(r.bpftoolMedianMs).replace(' ms', ''), 9)}`
      + `${lpad(r.ratioOfMedians === null ? '-' : `${r.ratioOfMedians.toFixed(2)}x`, 8)}${lpad(v(r.backgroundCores), 6)}`);
  }
  out.push('   (ms and us; wall = whole process; phases = sum of --timings phases, in-process; CPU = user+sys of the process;'
    + '\n    net = minus the 0-pin fixed cost; busy = other processes\' CPU, in cores, while pinleak ran)');
  for (const m of sc.marginal) out.push(`   marginal cost ${m.from} -> ${m.to} pins: ${m.usPerPin} us wall, ${v(m.usCpuPerPin)} us CPU per extra pin`);
  const s = sc.spread;
  const t = (x) => `${v(x)}x -> ${verdict(x === null ? null : x <= TARGET.perPinSpread)}`;
  out.push(`   time per pin, max/min over scales (target <= ${TARGET.perPinSpread}x): wall ${t(s.usPerPin)}; net wall ${t(s.usPerPinNet)}; `
    + `net phases ${t(s.usPerPinPhasesNet)}; CPU ${t(s.usCpuPerPin)}; net CPU ${t(s.usCpuPerPinNet)}`);
  return out.join('\n');
}

// ---- main ----

let interrupted = null;
function onSignal(sig) {
  if (interrupted) return;
  interrupted = sig;
  log(`${sig}: tearing down`);
  for (const t of teardownAll()) if (t.problems.length) log(`teardown problems: ${t.problems.join('; ')}`);
  process.exit(128 + (os.constants.signals[sig] ?? 1));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) die('needs root (bpffs mounts, mount namespaces, bpf(2) object creation)');
  if (!fs.existsSync(CLI)) die(`${CLI} missing: run npm run build (npm run bench does)`);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => onSignal(sig));
  process.on('exit', () => { teardownAll(); });

  const bpftool = findBpftool();
  const scales = o.scales ?? [o.pins];
  const started = new Date();
  const meta = {
    startedAt: started.toISOString(),
    host: { hostname: os.hostname(), kernel: os.release(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, memMB: Math.round(os.totalmem() / 1e6), loadavg: os.loadavg() },
    node: NODE,
    bpftool: versionOf(bpftool, ['version']),
    pinleak: {
      commit: versionOf('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
      dirty: (versionOf('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']) ?? '') !== '',
      changedFiles: (() => {
        try {
          return execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.slice(3));
        } catch {
          return null;
        }
      })(),
    },
    rssMethod: TIME_BIN ? '/usr/bin/time -f %M (wait4 ru_maxrss of the pinleak process)' : 'getrusage(RUSAGE_SELF) ru_maxrss inside scripts/bench-rss.mjs running the CLI in-process',
    wallMethod: 'performance.now() around spawnSync of the whole process (node startup included), stdout and stderr to files',
    commands: {
      pinleak: `node dist/pinleak.mjs scan --db <fresh temp db> --json --timings`,
      pinleakHistory: `node dist/pinleak.mjs scan --db <db of the last fresh run> --json --timings`,
      bpftool: `${bpftool} -f -j map show`,
    },
    options: o,
  };
  log(`Node.js ${NODE}; scales ${scales.join(', ')} pins; ${o.instances} instances (${o.nsInstances} in private namespaces); ${o.procs} idle processes; `
    + `${o.runs} timed runs (+${o.warmup} warm-up, +${o.historyRuns} into an existing db)`);

  // the floor under every pinleak run: node startup and loading the CLI's modules
  const startup = [];
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-bench-startup-'));
  try {
    for (let i = 0; i < o.runs + o.warmup; i++) {
      const files = { out: path.join(scratch, 'out'), err: path.join(scratch, 'err'), rss: path.join(scratch, 'rss') };
      const r = timed([process.execPath, CLI, '--version'], files, { rssVia: TIME_BIN ? 'time' : null });
      if (i >= o.warmup && r.status === 0) startup.push(r);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  meta.startupFloor = {
    command: 'node dist/pinleak.mjs --version',
    wallMs: stats(startup.map((r) => r.wallMs)),
    rssMB: stats(startup.filter((r) => r.rssKiB).map((r) => (r.rssKiB * 1024) / 1e6)),
  };
  log(`startup floor (node dist/pinleak.mjs --version): median ${fmtMs(meta.startupFloor.wallMs.median)}, ${meta.startupFloor.rssMB.median ?? '-'} MB`);

  const results = [];
  let base = null;
  if (scales.length > 1 && o.baseline) {
    log('--- fixed cost: the same instances and processes with 0 pins');
    base = await measureScale(o, 0, { bpftool, withBpftool: false });
  }
  for (const pins of scales) results.push(await measureScale(o, pins, { bpftool, withBpftool: true }));

  const mainScale = results.find((s) => s.pins === o.pins) ?? results[0];
  const report = [];
  report.push(`startup floor, node dist/pinleak.mjs --version on Node.js ${NODE}: median ${fmtMs(meta.startupFloor.wallMs.median)} wall, ${meta.startupFloor.rssMB.median ?? '-'} MB RSS (part of every pinleak wall time below)`);
  for (const s of results) report.push(printScale(s, s === mainScale));
  let scaling = null;
  if (results.length > 1) {
    scaling = scalingSummary(results, base);
    report.push(printScaling(scaling));
  }

  // nothing of ours may remain mounted (checked again here, after every world is gone)
  const worlds = [base, ...results].filter(Boolean);
  const under = (d, p) => p === d || p.startsWith(d + path.sep);
  const leftovers = readMountinfo().filter((m) => worlds.some((w) => under(w.dir, m.mountPoint)));
  const clean = !leftovers.length && worlds.every((w) => !w.teardown.problems.length && w.teardown.dirRemoved && !w.teardown.namespacesLeft);
  report.push('');
  report.push(`teardown: ${clean ? 'every process killed, every mount unmounted, temp dirs removed' : 'PROBLEMS (see teardown in the JSON)'}; `
    + `mounts left under the bench's ${worlds.length} temp dir(s): ${leftovers.length}${leftovers.length ? ` (${leftovers.map((m) => m.mountPoint).join(', ')})` : ''}`);

  const outFile = o.jsonOut ? path.resolve(o.jsonOut) : path.join(ROOT, 'bench-results', `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const targets = {
    wallUnder2s: mainScale.pinleak.wallMs.median !== null ? mainScale.pinleak.wallMs.median < TARGET.wallMs : null,
    phasesUnder2s: mainScale.pinleak.phaseSumMs.median !== null ? mainScale.pinleak.phaseSumMs.median < TARGET.wallMs : null,
    rssUnder250MB: mainScale.pinleak.rssMB.max !== null ? mainScale.pinleak.rssMB.max < TARGET.rssMB : null,
    notSlowerThanBpftool: mainScale.ratioOfMedians !== null && mainScale.ratioOfMedians !== undefined ? mainScale.ratioOfMedians <= TARGET.ratio : null,
    perPinWithin1_5x: scaling?.spread.usPerPin != null ? scaling.spread.usPerPin <= TARGET.perPinSpread : null,
    perPinNetWithin1_5x: scaling?.spread.usPerPinNet != null ? scaling.spread.usPerPinNet <= TARGET.perPinSpread : null,
    perPinNetCpuWithin1_5x: scaling?.spread.usCpuPerPinNet != null ? scaling.spread.usCpuPerPinNet <= TARGET.perPinSpread : null,
    atScale: mainScale.pins,
  };
  const teardown = { clean, mountsLeft: leftovers.map((m) => m.mountPoint) };
  fs.writeFileSync(outFile, JSON.stringify({ meta: { ...meta, finishedAt: new Date().toISOString() }, targets, baseline: base, scales: results, scaling, teardown }, null, 2) + '\n');
  report.push(`figures written to ${outFile}`);
  process.stdout.write(report.join('\n') + '\n');
}

main().catch((e) => {
  if (e instanceof Interrupted) onSignal('SIGINT');
  process.stderr.write(`bench: failed: ${e?.stack ?? e}\n`);
  for (const t of teardownAll()) if (t.problems.length) log(`teardown problems: ${t.problems.join('; ')}`);
  process.exit(1);
});
