// A child process that creates and holds real BPF objects on behalf of a test.
//
// Protocol: one JSON command per line on stdin, exactly one JSON answer per line on
// stdout, in order. The first line it writes is {"ready":true,"pid":N,"mntNs":N}, sent
// once it runs (under `unshare` that is after the namespace switch, so the parent can
// read /proc/<pid>/ns/mnt only after it). A failed command answers {"error":"..."}.
// When stdin closes (the test process exited or crashed) the agent exits, so it can
// never outlive the test that started it.
//
// It is plain ESM JavaScript, not TypeScript, because it runs under bare `node`; it
// imports the compiled kernel layer from dist/ (`npx tsc -p .` must have run).
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { execFileSync, spawn } from 'node:child_process';
import koffi from 'koffi';

const bpfUrl = new URL('../../dist/kernel/bpf.js', import.meta.url);
const abiUrl = new URL('../../dist/kernel/abi.js', import.meta.url);
const bpf = await import(bpfUrl.href);
const abi = await import(abiUrl.href);

// Every fd the agent created or opened, so an id can be found for it and so the
// kernel objects stay alive exactly as long as the test wants.
const fds = new Set();
// mmap(2) results; kept referenced so nothing ever unmaps them behind our back.
const mappings = [];
// children made by `share`, kept referenced so their stdin pipes stay open
const children = [];

const PROT_READ = 1;
const MAP_SHARED = 1;
const PAGE = 4096;
let libcHandle = null;
let mmapFn = null;
let dupFn = null;
function libc() {
  libcHandle ??= koffi.load('libc.so.6');
  return libcHandle;
}
function libcMmap() {
  mmapFn ??= libc().func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
  return mmapFn;
}
function libcDup() {
  dupFn ??= libc().func('int dup(int fd)');
  return dupFn;
}

function idOf(fd) {
  const kind = bpf.fdKind(fd);
  const info = bpf.objectInfo(fd, kind);
  if (!info) throw new Error(`fd ${fd} is not a BPF object (${kind})`);
  return { kind, id: info.id };
}

function need(cmd, key, type) {
  if (typeof cmd[key] !== type) throw new Error(`"${cmd.op}" needs "${key}" (${type})`);
  return cmd[key];
}

function absolute(p) {
  if (!path.isAbsolute(p)) throw new Error(`path must be absolute: ${p}`);
  return p;
}

/** MAJ:MIN of the topmost mount at `mountPoint` in this process's namespace. */
function devOf(mountPoint) {
  let dev = null;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp === mountPoint) dev = f[2]; // later lines are mounted on top of earlier ones
  }
  return dev;
}

const handlers = {
  map(cmd) {
    const type = cmd.type ?? 'hash';
    const typeNum = { hash: abi.MapType.HASH, array: abi.MapType.ARRAY }[type];
    if (typeNum === undefined) throw new Error(`unknown map type ${type}`);
    const fd = bpf.mapCreate({
      type: typeNum,
      keySize: cmd.keySize ?? 4,
      valueSize: cmd.valueSize ?? 8,
      maxEntries: cmd.maxEntries ?? 16,
      // BPF_F_MMAPABLE is only accepted for arrays (the kernel answers EINVAL otherwise)
      flags: cmd.mmapable ? abi.BPF_F_MMAPABLE : 0,
      name: cmd.name ?? 'pinleak_test',
    });
    fds.add(fd);
    return { fd, id: bpf.mapInfo(fd).id };
  },

  prog(cmd) {
    const mapFd = cmd.mapFd ?? undefined;
    // cgroup_skb (default), or sched_cls / xdp for tc and XDP attachments made with iproute2
    const type = { cgroup_skb: abi.ProgType.CGROUP_SKB, sched_cls: abi.ProgType.SCHED_CLS, xdp: abi.ProgType.XDP }[cmd.type ?? 'cgroup_skb'];
    if (type === undefined) throw new Error(`unknown program type ${cmd.type}`);
    const fd = bpf.progLoad({
      type,
      insns: bpf.trivialProgram(mapFd),
      name: cmd.name ?? 'pinleak_test',
      expectedAttachType: type === abi.ProgType.CGROUP_SKB ? abi.ATTACH_CGROUP_INET_INGRESS : 0,
    });
    fds.add(fd);
    return { fd, id: bpf.progInfo(fd).id };
  },

  link(cmd) {
    const progFd = need(cmd, 'progFd', 'number');
    const cgroup = absolute(need(cmd, 'cgroup', 'string'));
    // O_RDONLY | O_DIRECTORY: LINK_CREATE wants an fd of the cgroup directory itself
    const cgFd = fs.openSync(cgroup, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      const fd = bpf.linkCreate(progFd, cgFd, cmd.attachType ?? abi.ATTACH_CGROUP_INET_INGRESS);
      fds.add(fd);
      return { fd, id: bpf.linkInfo(fd).id };
    } finally {
      fs.closeSync(cgFd);
    }
  },

  pin(cmd) {
    const fd = need(cmd, 'fd', 'number');
    const p = absolute(need(cmd, 'path', 'string'));
    // mkdir -p inside bpffs works: bpffs supports plain directories
    fs.mkdirSync(path.dirname(p), { recursive: true });
    bpf.objPin(fd, p);
    return { ok: true, path: p };
  },

  close(cmd) {
    const fd = need(cmd, 'fd', 'number');
    if (!fds.has(fd)) throw new Error(`fd ${fd} is not one of this agent's`);
    fds.delete(fd);
    fs.closeSync(fd);
    return { ok: true };
  },

  mmap(cmd) {
    const fd = need(cmd, 'fd', 'number');
    const ptr = libcMmap()(null, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    const address = ptr === null ? 0n : koffi.address(ptr);
    if (address === 0xffffffffffffffffn || address === 0n) {
      const errno = koffi.errno();
      throw new Error(`mmap fd ${fd}: errno ${errno}`);
    }
    mappings.push(ptr);
    return { ok: true, address: '0x' + address.toString(16) };
  },

  // a second fd of the same open file (the kernel's struct file is shared)
  dup(cmd) {
    const fd = need(cmd, 'fd', 'number');
    const copy = libcDup()(fd);
    if (copy < 0) throw new Error(`dup fd ${fd}: errno ${koffi.errno()}`);
    fds.add(copy);
    return { fd: copy };
  },

  // a child process that inherits `fd` as its fd 3 (the same struct file) and holds it
  // until its stdin, a pipe from this agent, closes: it dies with the agent
  share(cmd) {
    const fd = need(cmd, 'fd', 'number');
    const child = spawn('cat', [], { stdio: ['pipe', 'ignore', 'ignore', fd] });
    if (child.pid === undefined) throw new Error('spawn cat failed');
    children.push(child);
    return { pid: child.pid, fd: 3 };
  },

  open(cmd) {
    const p = absolute(need(cmd, 'path', 'string'));
    const fd = bpf.objGet(p);
    fds.add(fd);
    return { fd, ...idOf(fd) };
  },

  mkdir(cmd) {
    fs.mkdirSync(absolute(need(cmd, 'path', 'string')), { recursive: true });
    return { ok: true };
  },

  // Mounts in the agent's own mount namespace: a `mount` child inherits it.
  mountBpffs(cmd) {
    const p = absolute(need(cmd, 'path', 'string'));
    fs.mkdirSync(p, { recursive: true });
    const args = ['-t', 'bpf'];
    if (cmd.options) args.push('-o', String(cmd.options));
    args.push('bpf', p);
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return { path: p, dev: devOf(p) };
  },

  info(cmd) {
    return idOf(need(cmd, 'fd', 'number'));
  },

  exit() {
    // answered first, then exit once stdout is flushed
    setImmediate(() => process.exit(0));
    return { ok: true };
  },
};

function answer(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorText(e) {
  if (e && typeof e === 'object' && 'stderr' in e && e.stderr && String(e.stderr).trim()) {
    return `${e.message}: ${String(e.stderr).trim()}`;
  }
  return e instanceof Error ? e.message : String(e);
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    answer({ error: `not JSON: ${line}` });
    return;
  }
  const handler = Object.hasOwn(handlers, cmd?.op) ? handlers[cmd.op] : undefined;
  if (!handler) {
    answer({ error: `unknown op ${JSON.stringify(cmd?.op)}` });
    return;
  }
  try {
    answer(handler(cmd));
  } catch (e) {
    answer({ error: errorText(e) });
  }
});
// stdin EOF: whoever drove us is gone
rl.on('close', () => process.exit(0));

answer({ ready: true, pid: process.pid, mntNs: Number(/\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/mnt'))[1]) });
