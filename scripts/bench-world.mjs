// Builds the benchmark's large host for real, and tears it down again.
//
// A world is: a temp dir /tmp/pinleak-bench-XXXXXX bound onto itself and made private
// (so nothing mounted below it propagates anywhere); `nsInstances` bpffs instances in
// private mount namespaces, each mounted and filled by its own worker process
// (`unshare -m --propagation private node bench-worker.mjs`), which stays alive as the
// namespace's live process; the other instances mounted in the host namespace under
// the temp dir and filled by a few host workers; and `procs` idle processes (`sleep`),
// half in the host namespace, half spread over the private namespaces (nsenter).
//
// Everything made is recorded as it is made: every pid the bench spawned, every mount
// it made in the host namespace (with its superblock MAJ:MIN). teardown() is
// synchronous, so it can run from a signal or 'exit' handler: SIGKILL by pid, unmount
// by path only while our own superblock is what is mounted there, then remove the
// temp dir only once no mount is left below it. Private namespaces (with their bpffs
// and pins) go away with their last process. Pins in host instances go with the
// unmount of their instance (the superblock is freed, and with it the pins).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { planTotals, splitPins } from './bench-plan.mjs';

const WORKER = fileURLToPath(new URL('./bench-worker.mjs', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const JOB_TIMEOUT_MS = 600_000;

const live = new Set();

/** Tears down every world not yet torn down (signal and exit handlers). */
export function teardownAll() {
  const reports = [];
  for (const w of [...live]) reports.push(w.teardown());
  return reports;
}

// ---- procfs helpers ----

function unescape(s) {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function readMountinfo(pid = 'self') {
  const out = [];
  for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    out.push({ dev: f[2], mountPoint: unescape(f[4]), fstype: f[sep + 1] });
  }
  return out;
}

function topMountAt(p) {
  return readMountinfo().filter((m) => m.mountPoint === p).at(-1);
}

export function mntNsOf(pid) {
  return Number(/\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/mnt`))[1]);
}

/** state letter and start time (clock ticks after boot) of a pid, or null when it is gone */
function statOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], startTime: f[19] };
  } catch {
    return null;
  }
}

/** still running (not gone, not a zombie) and, when startTime is given, still the same process */
function running(pid, startTime) {
  const st = statOf(pid);
  return st !== null && st.state !== 'Z' && (startTime === undefined || st.startTime === startTime);
}

function comm(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms) {
  Atomics.wait(sleepCell, 0, 0, ms);
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the world ----

export async function buildWorld(opts) {
  const {
    pins, instances, nsInstances = Math.floor(instances / 2), procs, workers = 4, progShare = 0.1,
    sleepSeconds = 3600, log = () => {},
  } = opts;
  if (nsInstances > instances) throw new Error(`--ns-instances ${nsInstances} > --instances ${instances}`);
  const t0 = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-bench-'));
  const hostMntNs = mntNsOf('self');
  /** every process spawned: {pid, child, exited, what, stderr} */
  const procsMade = [];
  /** every host-namespace mount made: {path, dev} */
  const mounts = [];
  const namespaces = [];
  /** process groups led by a process we spawned: every member is our descendant */
  const groups = [];
  let torn = null;

  const world = {
    dir, hostMntNs, namespaces, mounts, processesMade: procsMade,
    get tornDown() { return torn !== null; },
    teardown,
  };
  live.add(world);

  function track(child, what) {
    if (child.pid === undefined) throw new Error(`${what}: spawn failed`);
    const p = { pid: child.pid, child, exited: false, what, stderr: '' };
    child.once('exit', () => { p.exited = true; });
    child.on('error', () => { /* reported through exit / missing answers */ });
    procsMade.push(p);
    return p;
  }

  function hostMount(args, where) {
    execFileSync('mount', [...args, where], { stdio: ['ignore', 'ignore', 'pipe'] });
    const top = topMountAt(where);
    if (!top) throw new Error(`mount at ${where} not found in mountinfo`);
    mounts.push({ path: where, dev: top.dev });
    execFileSync('mount', ['--make-private', where], { stdio: ['ignore', 'ignore', 'pipe'] });
    return top.dev;
  }

  function startWorker(argv, what, { ownGroup = false } = {}) {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: ownGroup });
    const p = track(child, what);
    child.stderr.on('data', (d) => { p.stderr = (p.stderr + d).slice(-4000); });
    child.stdin.on('error', () => {});
    const queue = [];
    const waiting = [];
    readline.createInterface({ input: child.stdout, terminal: false }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = line.trim() === 'done' ? 'done' : { error: `non-JSON line: ${line}` };
      }
      const w = waiting.shift();
      if (w) w(msg);
      else queue.push(msg);
    });
    child.once('exit', (code, sig) => {
      for (const w of waiting.splice(0)) w({ error: `${what} (pid ${p.pid}) exited (${sig ?? code})${p.stderr ? `: ${p.stderr.trim()}` : ''}` });
    });
    p.next = (timeoutMs, label) => new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      if (p.exited) return reject(new Error(`${what} (pid ${p.pid}) has exited${p.stderr ? `: ${p.stderr.trim()}` : ''}`));
      const timer = setTimeout(() => reject(new Error(`${what} (pid ${p.pid}): no answer to ${label} within ${timeoutMs} ms`)), timeoutMs);
      waiting.push((msg) => { clearTimeout(timer); resolve(msg); });
    });
    p.send = (obj) => child.stdin.write((typeof obj === 'string' ? obj : JSON.stringify(obj)) + '\n');
    return p;
  }

  async function ready(p) {
    const r = await p.next(READY_TIMEOUT_MS, 'startup');
    if (r.error) throw new Error(r.error);
    // under unshare/nsenter the pid we spawned must be the worker itself (they exec)
    if (r.pid !== p.pid) throw new Error(`${p.what}: spawned pid ${p.pid} but the worker runs as ${r.pid}`);
    return r;
  }

  async function teardownOnError(e) {
    teardown();
    throw e;
  }

  try {
    // 1. the temp dir, private, before anything is mounted below it
    hostMount(['--bind', dir], dir);
    fs.mkdirSync(path.join(dir, 'db'));

    const counts = splitPins(pins, instances);
    const expected = { pins: 0, maps: 0, progs: 0, progsWithMap: 0, held: 0 };
    counts.forEach((c, i) => {
      const t = planTotals(i, c, progShare);
      for (const k of Object.keys(expected)) expected[k] += t[k];
    });

    // 2. private namespaces first: they copy the host's mount table when they are
    //    made, and must not get copies of the host instances mounted below
    const tw = performance.now();
    const nsWorkers = [];
    for (let i = 0; i < nsInstances; i++) {
      const mp = path.join(dir, `ns-${i}`);
      fs.mkdirSync(mp);
      const p = startWorker(['unshare', '-m', '--propagation', 'private', process.execPath, WORKER], `namespace worker ${i}`);
      nsWorkers.push({ p, index: i, mountPoint: mp });
    }
    for (const w of nsWorkers) {
      const r = await ready(w.p);
      if (r.mntNs === hostMntNs) throw new Error(`namespace worker ${w.index} is in the host mount namespace`);
      w.mntNs = r.mntNs;
    }

    // 3. host instances, and a few host workers to fill them
    const hostInst = [];
    for (let i = nsInstances; i < instances; i++) {
      const mp = path.join(dir, `host-${i}`);
      fs.mkdirSync(mp);
      const dev = hostMount(['-t', 'bpf', 'bpf'], mp);
      hostInst.push({ index: i, root: mp, count: counts[i], dev });
    }
    const nHostWorkers = Math.min(workers, hostInst.length);
    const hostWorkers = [];
    for (let k = 0; k < nHostWorkers; k++) {
      hostWorkers.push({ p: startWorker([process.execPath, WORKER], `host worker ${k}`), instances: [] });
    }
    hostInst.forEach((inst, i) => hostWorkers[i % nHostWorkers].instances.push({ index: inst.index, root: inst.root, count: inst.count, progShare }));
    for (const w of hostWorkers) await ready(w.p);

    // 4. idle processes, before the pins, so the pids the workers pick as "gone" are not
    //    theirs. Forked by one small shell that prints each one's pid; nsenter and
    //    setpriv exec, so that pid is the sleep's own. pdeathsig: the shell dies with the
    //    bench even if the bench is SIGKILLed, and every sleep with the shell. The shell
    //    leads its own process group, which every process it starts inherits (nsenter,
    //    setpriv and sleep keep it), so teardown finds even those whose pid it has not
    //    read yet.
    const ts = performance.now();
    const sleepers = [];
    if (procs > 0) {
      const inNs = nsWorkers.length ? Math.floor(procs / 2) : 0;
      const idle = `setpriv --pdeathsig KILL sleep ${Number(sleepSeconds)} </dev/null >/dev/null 2>&1 & echo $!`;
      const lines = [];
      for (let k = 0; k < procs; k++) {
        lines.push(k < inNs ? `nsenter --mount=/proc/${nsWorkers[k % nsWorkers.length].p.pid}/ns/mnt ${idle}` : idle);
      }
      lines.push('echo done', 'wait');
      const sh = startWorker(['setpriv', '--pdeathsig', 'KILL', 'sh', '-c', lines.join('\n')], 'idle-process spawner', { ownGroup: true });
      groups.push(sh.pid);
      for (;;) {
        const line = await sh.next(JOB_TIMEOUT_MS, 'idle processes');
        if (line === 'done') break;
        if (typeof line !== 'number') throw new Error(`idle-process spawner: ${JSON.stringify(line)}`);
        const st = statOf(line);
        if (!st) throw new Error(`idle process ${line} has gone`);
        // not our child (the shell's): killed by pid only while it is still this process
        procsMade.push({ pid: line, startTime: st.startTime, exited: false, what: 'idle process' });
        sleepers.push(line);
      }
      if (sleepers.length !== procs) throw new Error(`idle-process spawner started ${sleepers.length} of ${procs}`);
      // wait until every one has exec'd into sleep (nsenter and setpriv exec: same pid)
      const deadline = Date.now() + 30_000;
      for (const pid of sleepers) {
        while (comm(pid) !== 'sleep') {
          if (Date.now() > deadline) throw new Error(`idle process ${pid} is ${comm(pid) ?? 'gone'}, not sleep`);
          await delay(5);
        }
      }
    }
    const sleepersMs = performance.now() - ts;

    // 5. all workers make their pins at once
    const tj = performance.now();
    for (const w of nsWorkers) w.p.send({ mount: w.mountPoint, instances: [{ index: w.index, root: w.mountPoint, count: counts[w.index], progShare }] });
    for (const w of hostWorkers) w.p.send({ mount: null, instances: w.instances });
    const created = { pins: 0, maps: 0, progs: 0, held: 0 };
    const workerMs = [];
    for (const w of [...nsWorkers, ...hostWorkers]) {
      const r = await w.p.next(JOB_TIMEOUT_MS, 'job');
      if (r.error) throw new Error(`${w.p.what} (pid ${w.p.pid}): ${r.error}`);
      for (const k of Object.keys(created)) created[k] += r[k];
      workerMs.push(r.ms);
      if (w.mountPoint) namespaces.push({ pid: w.p.pid, mntNs: w.mntNs, mountPoint: w.mountPoint, dev: r.dev, index: w.index, pins: counts[w.index] });
    }
    for (const k of Object.keys(created)) {
      if (created[k] !== expected[k]) throw new Error(`workers made ${created[k]} ${k}, the plan says ${expected[k]}`);
    }
    const workersMs = performance.now() - tw - sleepersMs;
    const pinsMs = performance.now() - tj;

    let hostProcesses = 0;
    for (const e of fs.readdirSync('/proc')) if (/^\d+$/.test(e)) hostProcesses++;

    Object.assign(world, {
      pins, instances, nsInstances, procs, expected,
      hostInstances: hostInst.map(({ root, dev, count, index }) => ({ path: root, dev, pins: count, index })),
      devs: new Set([...hostInst.map((h) => h.dev), ...namespaces.map((n) => n.dev)]),
      workerPids: [...nsWorkers, ...hostWorkers].map((w) => w.p.pid),
      sleeperPids: sleepers,
      processesOnHost: hostProcesses,
      buildMs: {
        total: Math.round(performance.now() - t0), workers: Math.round(workersMs), pins: Math.round(pinsMs),
        slowestWorkerJob: Math.max(...workerMs, 0), idleProcesses: Math.round(sleepersMs),
      },
    });
    log(`world: ${pins} pins (${expected.maps} maps, ${expected.progs} progs, ${expected.held} held fds) in ${instances} instances `
      + `(${nsInstances} in private mount namespaces), ${procs} idle processes; built in ${(world.buildMs.total / 1000).toFixed(1)} s `
      + `(workers started and pins made ${(workersMs / 1000).toFixed(1)} s, of which making pins ${(pinsMs / 1000).toFixed(1)} s; idle processes ${(sleepersMs / 1000).toFixed(1)} s)`);
    return world;
  } catch (e) {
    return teardownOnError(e);
  }

  // Synchronous, idempotent; returns what it could not undo.
  function teardown() {
    if (torn) return torn;
    live.delete(world);
    const problems = [];
    // 1. processes, by pid, only those not yet reaped (a reaped pid may be reused)
    for (const p of procsMade) {
      if (p.exited) continue;
      // a process that is not our child may have died and its pid been reused
      if (p.startTime !== undefined && !running(p.pid, p.startTime)) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* ESRCH: exited, not yet reaped */
      }
    }
    // members of our process groups whose pid we never read (teardown mid-spawn)
    if (groups.length) {
      const ours = new Set(groups.map(String));
      for (const e of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
          const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          if (!ours.has(f[2]) || f[0] === 'Z') continue;
          procsMade.push({ pid: Number(e), startTime: f[19], exited: false, what: 'idle process (unread pid)' });
          process.kill(Number(e), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    const deadline = Date.now() + 10_000;
    for (const p of procsMade) {
      while (!p.exited && running(p.pid, p.startTime)) {
        if (Date.now() > deadline) {
          problems.push(`pid ${p.pid} (${p.what}) still running after SIGKILL`);
          break;
        }
        sleepSync(5);
      }
    }
    // 2. our host mounts, newest first, only while our superblock is the one there
    for (const m of [...mounts].reverse()) {
      const top = topMountAt(m.path);
      if (!top) continue;
      if (top.dev !== m.dev) {
        problems.push(`${m.path}: another mount (${top.dev}) is on top of ours (${m.dev}); left alone`);
        continue;
      }
      try {
        execFileSync('umount', [m.path], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch {
        try {
          execFileSync('umount', ['-l', m.path], { stdio: ['ignore', 'ignore', 'pipe'] });
        } catch (e) {
          problems.push(`umount ${m.path}: ${String(e.stderr ?? e.message).trim()}`);
        }
      }
    }
    // 3. the temp dir, never through a mount
    const left = readMountinfo().filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + path.sep));
    if (left.length) problems.push(`not removing ${dir}: still mounted ${left.map((m) => m.mountPoint).join(', ')}`);
    else {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch (e) {
        problems.push(`rm ${dir}: ${e.message}`);
      }
    }
    // 4. the private namespaces must be gone with their processes
    const ours = new Set(namespaces.map((n) => n.mntNs));
    const nsLeft = new Set();
    if (ours.size) {
      for (const e of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
          const ns = mntNsOf(e);
          if (ours.has(ns)) nsLeft.add(`${ns} (pid ${e})`);
        } catch {
          /* gone or a zombie */
        }
      }
    }
    for (const n of nsLeft) problems.push(`mount namespace ${n} still has a process`);
    torn = { problems, mountsLeft: left.length, dirRemoved: !fs.existsSync(dir), namespacesLeft: nsLeft.size };
    return torn;
  }
}
