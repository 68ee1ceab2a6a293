// What the pin recorder costs, measured on this host: every syscall of the host pays the
// sys_exit program's first instructions while it is attached (a getppid() loop in Python,
// without and with the recorder, median of 5), and each BPF_OBJ_PIN pays the whole record
// (pins of one map at new paths in a private bpffs, without and with). Run as root after
// `npm run build`: node scripts/recorder-cost.mjs
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const { startRecorder } = await import(new URL('../dist/kernel/recorder.js', import.meta.url).href);
const bpf = await import(new URL('../dist/kernel/bpf.js', import.meta.url).href);
const { loadProgram } = await import(new URL('../dist/kernel/loader.js', import.meta.url).href);
const { Asm, R0 } = await import(new URL('../dist/kernel/asm.js', import.meta.url).href);
const { kernelBtf } = await import(new URL('../dist/kernel/btf.js', import.meta.url).href);
const { ProgType, AttachType } = await import(new URL('../dist/kernel/abi.js', import.meta.url).href);

/** An empty program on the same tracepoint: what any sys_exit program costs here, for comparison. */
function attachEmpty() {
  const prog = loadProgram({
    name: 'cost_empty', type: ProgType.TRACING, insns: new Asm().mov(R0, 0).exit().assemble(),
    expectedAttachType: AttachType.TRACE_RAW_TP, attachBtfId: kernelBtf().find('typedef', 'btf_trace_sys_exit'),
  });
  const link = bpf.linkCreate(prog, 0, AttachType.TRACE_RAW_TP);
  return () => {
    bpf.closeFd(link);
    bpf.closeFd(prog);
  };
}

const CALLS = 1_000_000;
const ROUNDS = 5;
const PINS = 2000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * CPU ns per getppid() in a Python loop, minus the loop's own cost (the same loop with a
 * no-op). CPU time, not wall time: on a loaded host, time spent preempted is not the cost.
 */
function syscallNs() {
  const py = `import os, time
n=${CALLS}
f=os.getppid
t=time.process_time_ns()
for _ in range(n): f()
a=time.process_time_ns()-t
g=lambda: None
t=time.process_time_ns()
for _ in range(n): g()
b=time.process_time_ns()-t
print((a-b)/n)`;
  return Number(execFileSync('python3', ['-c', py], { encoding: 'utf8' }));
}

function pinNs(dir) {
  const fd = bpf.mapCreate({ type: 1, keySize: 4, valueSize: 4, maxEntries: 1, name: 'cost' });
  try {
    const t = process.cpuUsage();
    for (let i = 0; i < PINS; i++) bpf.objPin(fd, path.join(dir, `p${i}`));
    const used = process.cpuUsage(t);
    const ns = ((used.user + used.system) * 1000) / PINS;
    for (let i = 0; i < PINS; i++) fs.unlinkSync(path.join(dir, `p${i}`));
    return ns;
  } finally {
    bpf.closeFd(fd);
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-cost-'));
execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
try {
  const bare = [], attached = [], empty = [], pinBare = [], pinAttached = [];
  for (let r = 0; r < ROUNDS; r++) {
    bare.push(syscallNs());
    const detach = attachEmpty();
    try {
      empty.push(syscallNs());
    } finally {
      detach();
    }
    pinBare.push(pinNs(dir));
    const rec = startRecorder();
    try {
      attached.push(syscallNs());
      pinAttached.push(pinNs(dir));
      rec.drain();
    } finally {
      rec.close();
    }
  }
  const f = (x) => x.toFixed(1);
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs`);
  console.log(`getppid(): ${f(median(bare))} ns bare, ${f(median(attached))} ns with the recorder: +${f(median(attached) - median(bare))} ns per syscall (median of ${ROUNDS} x ${CALLS}); an empty program on sys_exit: +${f(median(empty) - median(bare))} ns`);
  console.log(`BPF_OBJ_PIN: ${f(median(pinBare) / 1000)} us bare, ${f(median(pinAttached) / 1000)} us with the recorder: +${f((median(pinAttached) - median(pinBare)) / 1000)} us per pin (median of ${ROUNDS} x ${PINS})`);
} finally {
  execFileSync('umount', [dir]);
  fs.rmdirSync(dir);
}
