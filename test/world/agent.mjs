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
import net from 'node:net';
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
// TCP sockets (tcpPair), kept referenced so they stay open
const sockets = [];

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

// program types the tests load, each returning its "let it pass" verdict
const PROG_KINDS = {
  cgroup_skb: { type: abi.ProgType.CGROUP_SKB, ret: 1, expectedAttachType: abi.ATTACH_CGROUP_INET_INGRESS },
  sched_cls: { type: abi.ProgType.SCHED_CLS, ret: 0 }, // TC_ACT_OK
  xdp: { type: abi.ProgType.XDP, ret: 2 }, // XDP_PASS
  flow_dissector: { type: abi.ProgType.FLOW_DISSECTOR, ret: 0 }, // BPF_OK
  sk_lookup: { type: abi.ProgType.SK_LOOKUP, ret: 1, expectedAttachType: abi.NetAttachType.SK_LOOKUP }, // SK_PASS
};

// Unix sockets carrying an fd in flight (inFlight), kept open so the fd stays in flight.
const inFlightSockets = [];
let socketFns = null;
function libcSockets() {
  if (!socketFns) {
    const libc = koffi.load('libc.so.6');
    socketFns = {
      socketpair: libc.func('int socketpair(int domain, int type, int protocol, void *sv)'),
      sendmsg: libc.func('long sendmsg(int sockfd, void *msg, int flags)'),
    };
  }
  return socketFns;
}

/**
 * Sends `fd` over a new unix socket pair with SCM_RIGHTS and never receives it: the
 * object behind it stays referenced by the message in flight only, once the caller closes
 * its fd. struct msghdr, iovec and cmsghdr as laid out on LP64 Linux (test-only ABI).
 */
function sendInFlight(fd) {
  const { socketpair, sendmsg } = libcSockets();
  const sv = Buffer.alloc(8);
  if (socketpair(1 /* AF_UNIX */, 2 /* SOCK_DGRAM */, 0, sv) !== 0) throw new Error(`socketpair: errno ${koffi.errno()}`);
  const sockets = [sv.readInt32LE(0), sv.readInt32LE(4)];
  inFlightSockets.push(...sockets);
  const data = Buffer.from('x');
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(koffi.address(data), 0);
  iov.writeBigUInt64LE(1n, 8);
  const cmsg = Buffer.alloc(24); // CMSG_SPACE(sizeof(int))
  cmsg.writeBigUInt64LE(20n, 0); // cmsg_len = CMSG_LEN(sizeof(int))
  cmsg.writeInt32LE(1, 8); // SOL_SOCKET
  cmsg.writeInt32LE(1, 12); // SCM_RIGHTS
  cmsg.writeInt32LE(fd, 16);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(koffi.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(koffi.address(cmsg), 32);
  msg.writeBigUInt64LE(24n, 40);
  if (Number(sendmsg(sockets[0], msg, 0)) !== 1) throw new Error(`sendmsg: errno ${koffi.errno()}`);
  return sockets;
}

// An object's kind and id as the kernel prints them in /proc/self (the fd's anon inode
// name, then map_id/prog_id/link_id of its fdinfo): read here by hand, never through
// pinleak's own decoders (fdKind, objectInfo, parseBpfFdinfo), which the tests check
// against these ids.
const FD_KINDS = { 'anon_inode:bpf-map': 'map', 'anon_inode:bpf-prog': 'prog', 'anon_inode:bpf_link': 'link', 'anon_inode:bpf-link': 'link' };

function fdinfoId(fd, kind) {
  const text = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const m = new RegExp(`^${kind}_id:\\s*(\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`fd ${fd}: no ${kind}_id in /proc/self/fdinfo/${fd}`);
  return Number(m[1]);
}

function idOf(fd) {
  const kind = FD_KINDS[fs.readlinkSync(`/proc/self/fd/${fd}`)];
  if (!kind) throw new Error(`fd ${fd} is not a BPF object (${fs.readlinkSync(`/proc/self/fd/${fd}`)})`);
  return { kind, id: fdinfoId(fd, kind) };
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
    // hash, array, prog_array, array_of_maps, devmap, sockmap, ... (abi.MapType)
    const typeNum = Object.hasOwn(abi.MapType, type.toUpperCase()) ? abi.MapType[type.toUpperCase()] : undefined;
    if (typeNum === undefined) throw new Error(`unknown map type ${type}`);
    const fd = bpf.mapCreate({
      type: typeNum,
      keySize: cmd.keySize ?? 4,
      valueSize: cmd.valueSize ?? 8,
      maxEntries: cmd.maxEntries ?? 16,
      // BPF_F_MMAPABLE is only accepted for arrays (the kernel answers EINVAL otherwise)
      flags: cmd.mmapable ? abi.BPF_F_MMAPABLE : 0,
      name: cmd.name ?? 'pinleak_test',
      innerMapFd: cmd.innerMapFd,
    });
    fds.add(fd);
    return { fd, id: fdinfoId(fd, 'map') };
  },

  // a cgroup_skb program returning 1 (using mapFd), or the given instructions of any type
  prog(cmd) {
    // progType: a name of PROG_KINDS (a trivial program returning what that type passes with),
    // or a number with the given instructions; `type` is the older spelling of the name
    const kind = typeof cmd.progType === 'number'
      ? { type: cmd.progType, ret: 1, expectedAttachType: cmd.expectedAttachType ?? 0 }
      : PROG_KINDS[cmd.progType ?? cmd.type ?? 'cgroup_skb'];
    if (!kind) throw new Error(`unknown progType ${cmd.progType ?? cmd.type}`);
    const fd = bpf.progLoad({
      type: kind.type,
      insns: cmd.insns ?? bpf.trivialProgram(cmd.mapFd ?? undefined, kind.ret),
      name: cmd.name ?? 'pinleak_test',
      expectedAttachType: cmd.expectedAttachType ?? kind.expectedAttachType,
    });
    fds.add(fd);
    return { fd, id: fdinfoId(fd, 'prog') };
  },

  // key and value as hex strings
  update(cmd) {
    bpf.mapUpdate(need(cmd, 'fd', 'number'), Buffer.from(need(cmd, 'key', 'string'), 'hex'), Buffer.from(need(cmd, 'value', 'string'), 'hex'));
    return { ok: true };
  },

  testRun(cmd) {
    return { retval: bpf.progTestRun(need(cmd, 'fd', 'number')) };
  },

  perfEvent(cmd) {
    const fd = bpf.perfEventOpen({
      type: need(cmd, 'type', 'number'), config: need(cmd, 'config', 'number'), pid: cmd.pid ?? 0, cpu: cmd.cpu ?? -1, progFd: cmd.progFd,
    });
    fds.add(fd);
    return { fd };
  },

  // an established TCP connection on loopback: both ends stay open in this process
  async tcpPair() {
    const server = net.createServer();
    await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const accepted = new Promise((resolve) => server.once('connection', resolve));
    const client = net.connect(server.address().port, '127.0.0.1');
    await new Promise((resolve, reject) => client.once('error', reject).once('connect', resolve));
    const peer = await accepted;
    sockets.push(server, client, peer);
    return { fds: [client._handle.fd, peer._handle.fd] };
  },

  // a copy of another process's fd (pidfd_getfd): the same open file
  grab(cmd) {
    const fd = bpf.duplicateFd(need(cmd, 'pid', 'number'), need(cmd, 'fd', 'number'));
    fds.add(fd);
    return { fd };
  },

  uprobeMulti(cmd) {
    const fd = bpf.uprobeMultiLink(need(cmd, 'progFd', 'number'), absolute(need(cmd, 'path', 'string')), [need(cmd, 'offset', 'number')], need(cmd, 'pid', 'number'));
    fds.add(fd);
    return { fd, id: fdinfoId(fd, 'link') };
  },

  // a link on a network namespace (flow dissector, sk_lookup), given as its nsfs file
  netnsLink(cmd) {
    const nsFd = fs.openSync(absolute(need(cmd, 'netns', 'string')), fs.constants.O_RDONLY);
    try {
      const fd = bpf.linkCreate(need(cmd, 'progFd', 'number'), nsFd, need(cmd, 'attachType', 'number'));
      fds.add(fd);
      return { fd, id: fdinfoId(fd, 'link') };
    } finally {
      fs.closeSync(nsFd);
    }
  },

  // BPF_PROG_ATTACH: tcx by ifindex and flow dissector act on this process's network namespace;
  // sockmap programs take the map's fd (targetFd)
  attach(cmd) {
    bpf.progAttach(need(cmd, 'progFd', 'number'), cmd.target ?? need(cmd, 'targetFd', 'number'), need(cmd, 'attachType', 'number'));
    return { ok: true };
  },

  link(cmd) {
    const progFd = need(cmd, 'progFd', 'number');
    const cgroup = absolute(need(cmd, 'cgroup', 'string'));
    // O_RDONLY | O_DIRECTORY: LINK_CREATE wants an fd of the cgroup directory itself
    const cgFd = fs.openSync(cgroup, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      const fd = bpf.linkCreate(progFd, cgFd, cmd.attachType ?? abi.ATTACH_CGROUP_INET_INGRESS);
      fds.add(fd);
      return { fd, id: fdinfoId(fd, 'link') };
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

  // any file (a namespace's nsfs file, say), held open until closed
  openFile(cmd) {
    const fd = fs.openSync(absolute(need(cmd, 'path', 'string')), fs.constants.O_RDONLY);
    fds.add(fd);
    return { fd };
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

  // the fd's object stays referenced only by a message nobody receives (close the fd after)
  inFlight(cmd) {
    const fd = need(cmd, 'fd', 'number');
    if (!fds.has(fd)) throw new Error(`fd ${fd} is not one of this agent's`);
    return { ok: true, sockets: sendInFlight(fd) };
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

async function handle(line) {
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
    answer(await handler(cmd));
  } catch (e) {
    answer({ error: errorText(e) });
  }
}

// one command at a time, so answers stay in command order even for asynchronous ones
let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  queue = queue.then(() => handle(line));
});
// stdin EOF: whoever drove us is gone
rl.on('close', () => process.exit(0));

answer({ ready: true, pid: process.pid, mntNs: Number(/\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/mnt'))[1]) });
