// A short-lived pinner for the recorder tests: makes one BPF object, pins it, prints what
// it is (one JSON line) and exits without unpinning.
//   node pinner.mjs KIND PATH [MODE] [COUNT]
// KIND: map | prog | link (a cgroup_skb program linked to this process's cgroup v2 dir).
// MODE: abs (default): PATH as given; rel: chdir to PATH's directory and pin by its name;
// pathfd: BPF_F_PATH_FD with the directory's fd and the name; twice: pin a second time at
// the same path (EEXIST, reported in "error"). COUNT: pin COUNT times at PATH-0..PATH-N.
import fs from 'node:fs';
import path from 'node:path';

const bpf = await import(new URL('../../dist/kernel/bpf.js', import.meta.url).href);
const abi = await import(new URL('../../dist/kernel/abi.js', import.meta.url).href);
const [kind, pinPath, mode = 'abs', count = '1'] = process.argv.slice(2);
const BPF_F_PATH_FD = 1 << 14;
const CGROUP_SKB = 8;
const CGROUP_INET_INGRESS = 0;

function make() {
  if (kind === 'map') return bpf.mapCreate({ type: 1, keySize: 4, valueSize: 8, maxEntries: 4, name: 'pinner_map' });
  const prog = bpf.progLoad({ type: CGROUP_SKB, insns: bpf.trivialProgram(), name: 'pinner_prog' });
  if (kind === 'prog') return prog;
  const cg = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::')).slice(3);
  const cgFd = fs.openSync(path.join('/sys/fs/cgroup/unified', cg), 'r');
  return bpf.linkCreate(prog, cgFd, CGROUP_INET_INGRESS);
}

function pin(fd, p) {
  if (mode === 'rel') {
    process.chdir(path.dirname(p));
    bpf.objPin(fd, path.basename(p));
  } else if (mode === 'pathfd') {
    const dir = fs.openSync(path.dirname(p), 'r');
    const name = Buffer.from(path.basename(p) + '\0');
    const r = bpf.bpfRaw(abi.BpfCmd.OBJ_PIN, abi.ObjAttr, { pathname: bpf.addr(name), bpf_fd: fd, file_flags: BPF_F_PATH_FD, path_fd: dir });
    if (r.ret < 0) throw new Error(`BPF_OBJ_PIN with path_fd: errno ${r.errno}`);
  } else bpf.objPin(fd, p);
}

const fd = make();
const info = bpf.objectInfo(fd, kind);
const stat = fs.readFileSync('/proc/self/stat', 'utf8');
const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
const out = {
  pid: process.pid, ppid: process.ppid, startTime: Number(fields[19]), kind, id: info.id,
  mntNs: fs.statSync('/proc/self/ns/mnt').ino, error: null,
};
const n = Number(count);
if (n > 1) for (let i = 0; i < n; i++) pin(fd, `${pinPath}-${i}`);
else pin(fd, pinPath);
if (mode === 'twice') {
  try {
    bpf.objPin(fd, pinPath);
  } catch (e) {
    out.error = e.code;
  }
}
console.log(JSON.stringify(out));
process.exit(0);
