// A benchmark worker: makes many pins fast by calling the kernel layer directly
// (create + pin + close in a loop, no child per pin), then stays alive holding the
// fds it was told to hold, until told to exit or until its stdin closes (the bench
// is gone), so it can never outlive the bench.
//
// Started either in the host mount namespace (it fills bpffs instances the bench
// mounted) or as `unshare -m --propagation private node bench-worker.mjs`, in which
// case it mounts its namespace's own bpffs first and is that namespace's live process.
//
// Protocol (JSON lines): it writes {"ready":true,"pid","mntNs"}; reads one job
// {"mount": path|null, "instances": [{"index","root","count"}]}; writes
// {"done":true,"dev","maps","progs","pins","held","ms"} or {"error":"..."}; then waits
// for "exit" or EOF.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { execFileSync } from 'node:child_process';
import { planInstance } from './bench-plan.mjs';

const bpf = await import(new URL('../dist/kernel/bpf.js', import.meta.url).href);
const abi = await import(new URL('../dist/kernel/abi.js', import.meta.url).href);

const held = new Set();

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function mountDev(mountPoint) {
  let dev = null;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp === mountPoint) dev = f[2];
  }
  return dev;
}

const PID_MAX = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
const usedDead = new Set();

/** A pid below pid_max that no process has now (pinleak then sees a creator that is gone). */
function deadPid(instanceIndex, leaf) {
  const span = Math.max(1000, PID_MAX - 3000);
  let pid = 2000 + ((instanceIndex * 7919 + leaf * 104729) % span);
  while (usedDead.has(pid) || fs.existsSync(`/proc/${pid}`)) pid = 2000 + ((pid - 2000 + 1) % span);
  usedDead.add(pid);
  return pid;
}

function fillInstance(inst) {
  const t = { maps: 0, progs: 0, pins: 0, held: 0 };
  const made = new Set();
  let lastMapFd = -1; // kept open until the next map, so a program can reference it
  const closeLastMap = () => {
    if (lastMapFd >= 0 && !held.has(lastMapFd)) bpf.closeFd(lastMapFd);
    lastMapFd = -1;
  };
  for (const p of planInstance(inst.index, inst.count, process.pid, (leaf) => deadPid(inst.index, leaf), inst.progShare)) {
    const full = path.join(inst.root, p.rel);
    const dir = path.dirname(full);
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    let fd;
    if (p.kind === 'map') {
      closeLastMap();
      fd = bpf.mapCreate({
        type: p.mapType === 'hash' ? abi.MapType.HASH : abi.MapType.ARRAY,
        keySize: 4, valueSize: 8, maxEntries: 16, name: p.name,
      });
      t.maps++;
    } else {
      const cg = p.progType === 'cgroup_skb';
      fd = bpf.progLoad({
        type: cg ? abi.ProgType.CGROUP_SKB : abi.ProgType.SOCKET_FILTER,
        insns: bpf.trivialProgram(p.withMap && lastMapFd >= 0 ? lastMapFd : undefined),
        name: p.name,
        expectedAttachType: cg ? abi.ATTACH_CGROUP_INET_INGRESS : 0,
      });
      t.progs++;
    }
    bpf.objPin(fd, full);
    t.pins++;
    if (p.hold) {
      held.add(fd);
      t.held++;
    }
    if (p.kind === 'map') lastMapFd = fd;
    else if (!p.hold) bpf.closeFd(fd);
  }
  closeLastMap();
  return t;
}

function runJob(job) {
  const t0 = performance.now();
  let dev = null;
  if (job.mount) {
    fs.mkdirSync(job.mount, { recursive: true });
    // a `mount` child inherits this process's (private) mount namespace
    execFileSync('mount', ['-t', 'bpf', 'bpf', job.mount], { stdio: ['ignore', 'ignore', 'pipe'] });
    dev = mountDev(job.mount);
    if (!dev) throw new Error(`bpffs at ${job.mount} not in this namespace's mountinfo`);
  }
  const total = { maps: 0, progs: 0, pins: 0, held: 0 };
  for (const inst of job.instances) {
    const t = fillInstance(inst);
    for (const k of Object.keys(total)) total[k] += t[k];
  }
  return { done: true, dev, ...total, ms: Math.round(performance.now() - t0) };
}

let gotJob = false;
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  if (!line.trim()) return;
  if (!gotJob) {
    gotJob = true;
    try {
      send(runJob(JSON.parse(line)));
    } catch (e) {
      send({ error: e instanceof Error ? `${e.message}${e.stderr ? `: ${String(e.stderr).trim()}` : ''}` : String(e) });
    }
    return;
  }
  if (line.trim() === 'exit') process.exit(0);
});
rl.on('close', () => process.exit(0));

send({ ready: true, pid: process.pid, mntNs: Number(/\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/mnt'))[1]) });
