// Real-kernel test fixtures: build BPF worlds (bpffs mounts, pins, holders in other
// mount namespaces, namespaces no process is in) and always tear them down.
//
// Every resource a World makes is recorded as it is made, so cleanup() can undo
// everything in reverse order, and keeps going when one step fails. Processes are
// killed first (by pid, SIGKILL), because a live holder can keep a mount busy.
//
// Needs root, a cgroup v2 hierarchy at CGROUP_ROOT, util-linux mount/umount/unshare/
// nsenter, and dist/kernel/bpf.js compiled (`npx tsc -p .`): the agent imports it.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const AGENT_PATH = fileURLToPath(new URL('./agent.mjs', import.meta.url));
export const CGROUP_ROOT = '/sys/fs/cgroup/unified';
const SEND_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 5_000;

// ---- the agent protocol (see agent.mjs) ----

export type AgentCommand =
  | { op: 'map'; name?: string; type?: 'hash' | 'array'; mmapable?: boolean; keySize?: number; valueSize?: number; maxEntries?: number }
  | { op: 'prog'; name?: string; mapFd?: number; type?: 'cgroup_skb' | 'sched_cls' | 'xdp' }
  | { op: 'link'; progFd: number; cgroup: string; attachType?: number }
  | { op: 'pin'; fd: number; path: string }
  | { op: 'close'; fd: number }
  | { op: 'mmap'; fd: number }
  | { op: 'open'; path: string }
  /** dup(2): another fd of the same open file */
  | { op: 'dup'; fd: number }
  /** a child (`cat`) holding `fd` as its fd 3, exiting when the agent does */
  | { op: 'share'; fd: number }
  | { op: 'info'; fd: number }
  | { op: 'mkdir'; path: string }
  | { op: 'mountBpffs'; path: string; options?: string }
  | { op: 'exit' };

/** One answer line. Which fields are set depends on the op; `error` is set when it failed. */
export interface AgentAnswer {
  fd?: number;
  pid?: number;
  id?: number;
  kind?: string;
  ok?: boolean;
  path?: string;
  dev?: string | null;
  address?: string;
  error?: string;
}

export interface Agent {
  /** the agent's own pid (under `unshare` too: unshare execs, it does not fork) */
  readonly pid: number;
  /** inode of /proc/<pid>/ns/mnt */
  readonly mntNs: number;
  /** true while the process has not exited */
  readonly alive: boolean;
  /** sends one command and resolves with its answer, `{error}` included */
  send(cmd: AgentCommand): Promise<AgentAnswer>;
  /** like send, but rejects when the answer is an error */
  call(cmd: AgentCommand): Promise<AgentAnswer>;
  /** asks the agent to exit and waits until it has */
  exit(): Promise<void>;
  /** SIGKILL by pid, and waits until it has exited */
  kill(): Promise<void>;
}

export interface Mount {
  path: string;
  /** superblock MAJ:MIN, mountinfo field 3 */
  dev: string;
}

export interface DetachedNamespace {
  /** the nsfs bind mount that is the only thing keeping the namespace alive */
  nsfsPath: string;
  mntNs: number;
  /** where the bpffs is mounted, as a path inside that namespace */
  bpffsMountPoint: string;
  bpffsDev: string;
  /** the pin, as a path inside that namespace */
  pinPath: string;
  pinnedMapId: number;
}

export interface World {
  /** the world's temp dir, /tmp/pinleak-test-XXXXXX */
  readonly dir: string;
  readonly hostMntNs: number;
  mountBpffs(dir?: string, opts?: { options?: string }): Promise<Mount>;
  bindMount(src: string, dst: string): Promise<Mount>;
  /** unshareMount: in a new private mount namespace; joinMountOf: in the mount namespace of that pid (a second process of a "container") */
  spawnAgent(opts?: { unshareMount?: boolean; joinMountOf?: number }): Promise<Agent>;
  namespaceWithoutProcess(opts?: { mapName?: string }): Promise<DetachedNamespace>;
  makeCgroup(): Promise<string>;
  /** registers an extra undo step, run in reverse order with the world's own */
  onCleanup(what: string, undo: () => void | Promise<void>): void;
  /** undoes everything; throws an AggregateError listing what could not be undone, after trying all of it */
  cleanup(): Promise<void>;
}

// ---- procfs helpers (exported: tests use them as oracles too) ----

export interface MountEntry {
  id: number;
  parent: number;
  dev: string;
  root: string;
  mountPoint: string;
  fstype: string;
  source: string;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/<pid>/mountinfo, in mount order (a later entry at the same point is on top). */
export function readMountinfo(pid: number | 'self' = 'self'): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    out.push({
      id: Number(f[0]), parent: Number(f[1]), dev: f[2], root: unescapeMountinfo(f[3]),
      mountPoint: unescapeMountinfo(f[4]), fstype: f[sep + 1], source: unescapeMountinfo(f[sep + 2] ?? ''),
    });
  }
  return out;
}

/** The topmost mount at exactly `mountPoint`, or undefined. */
export function topMountAt(mountPoint: string, pid: number | 'self' = 'self'): MountEntry | undefined {
  return readMountinfo(pid).filter((m) => m.mountPoint === mountPoint).at(-1);
}

export function mntNsOf(pid: number | 'self'): number {
  const link = fs.readlinkSync(`/proc/${pid}/ns/mnt`); // "mnt:[4026531841]"
  const m = /\[(\d+)\]/.exec(link);
  if (!m) throw new Error(`unexpected ns link ${link}`);
  return Number(m[1]);
}

/** An error's message; for a failed command, its first line and the command's stderr. */
function errText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const stderr = String((e as { stderr?: unknown } | null)?.stderr ?? '').trim();
  return stderr ? `${message.split('\n')[0]}: ${stderr}` : message;
}

// ---- safety net: a test process that exits without cleanup() still kills its agents ----

const emergencyHooks = new Set<() => void>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL by pid, lazy-unmount by path.
  process.on('exit', () => {
    for (const hook of emergencyHooks) {
      try {
        hook();
      } catch {
        /* best effort, the process is going away */
      }
    }
  });
}

// ---- the world ----

interface UndoStep {
  what: string;
  undo: () => void | Promise<void>;
}

interface Proc {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: boolean;
}

let cgroupCounter = 0;

export function createWorld(): World {
  installExitHandler();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-test-'));
  const hostMntNs = mntNsOf('self');
  const steps: UndoStep[] = [];
  const procs: Proc[] = [];
  // host-namespace mount points this world made, for the synchronous exit hook
  const hostMounts: Mount[] = [];
  let privateDir: Promise<void> | null = null;
  let counter = 0;
  let cleaned = false;

  const fresh = (prefix: string) => path.join(dir, `${prefix}-${++counter}`);

  function record(what: string, undo: () => void | Promise<void>): void {
    if (cleaned) throw new Error(`world already cleaned up; cannot record ${what}`);
    steps.push({ what, undo });
  }

  /** Records a host mount so cleanup unmounts it, but only while our superblock is what is mounted there. */
  function recordMount(m: Mount, what: string): void {
    hostMounts.push(m);
    record(what, async () => {
      const top = topMountAt(m.path);
      if (!top) return; // already unmounted by the test
      if (top.dev !== m.dev) throw new Error(`${m.path}: another mount (${top.dev}) is on top of ours (${m.dev}); left alone`);
      try {
        await run('umount', [m.path]);
      } catch {
        // busy (an fd or cwd of some process inside): detach it now, the kernel frees it later
        await run('umount', ['-l', m.path]);
      }
    });
  }

  /**
   * The temp dir becomes a private bind mount of itself, once, before the world
   * mounts anything under it: a mount made under a shared mount would propagate to
   * its peers at mount time, before any --make-private on the new mount could stop it;
   * and util-linux refuses to bind an nsfs file onto a shared mount.
   */
  function ensurePrivateDir(): Promise<void> {
    privateDir ??= (async () => {
      await run('mount', ['--bind', dir, dir]);
      const dev = topMountAt(dir)?.dev;
      if (!dev) throw new Error(`bind mount of ${dir} not found in mountinfo`);
      recordMount({ path: dir, dev }, `private bind mount of ${dir}`);
      await run('mount', ['--make-private', dir]);
    })();
    return privateDir;
  }

  async function mountBpffs(where?: string, opts: { options?: string } = {}): Promise<Mount> {
    await ensurePrivateDir();
    const p = where === undefined ? fresh('bpffs') : path.resolve(dir, where);
    makeDir(p);
    const args = ['-t', 'bpf'];
    if (opts.options) args.push('-o', opts.options);
    args.push('bpf', p);
    await run('mount', args);
    const top = topMountAt(p);
    if (!top || top.fstype !== 'bpf') throw new Error(`bpffs at ${p} not found in mountinfo`);
    const m = { path: p, dev: top.dev };
    recordMount(m, `bpffs at ${p}`);
    // outside the temp dir the parent may be shared; keep later mounts below it to ourselves
    await run('mount', ['--make-private', p]);
    return m;
  }

  async function bindMount(src: string, dst: string): Promise<Mount> {
    await ensurePrivateDir();
    const target = path.resolve(dir, dst);
    if (!fs.existsSync(target)) {
      // a bind target must exist and be of the source's kind (file or directory)
      if (fs.statSync(src).isDirectory()) makeDir(target);
      else {
        makeDir(path.dirname(target));
        fs.writeFileSync(target, '');
        if (!isInside(target)) record(`created ${target}`, () => fs.unlinkSync(target));
      }
    }
    await run('mount', ['--bind', src, target]);
    const top = topMountAt(target);
    if (!top) throw new Error(`bind mount at ${target} not found in mountinfo`);
    const m = { path: target, dev: top.dev };
    recordMount(m, `bind mount ${src} -> ${target}`);
    await run('mount', ['--make-private', target]);
    return m;
  }

  function isInside(p: string): boolean {
    return p === dir || p.startsWith(dir + path.sep);
  }

  /** mkdir -p; what it creates outside the temp dir is recorded for removal (the temp dir goes as a whole). */
  function makeDir(p: string): void {
    const first = fs.mkdirSync(p, { recursive: true });
    if (first && !isInside(first)) record(`created ${first}`, () => removeTree(first));
  }

  /** rm -rf, refused while anything is mounted inside: it would delete through the mount. */
  function removeTree(p: string): void {
    const left = readMountinfo().filter((m) => m.mountPoint === p || m.mountPoint.startsWith(p + path.sep));
    if (left.length) throw new Error(`not removing ${p}, still mounted: ${left.map((m) => m.mountPoint).join(', ')}`);
    fs.rmSync(p, { recursive: true, force: true });
  }

  async function startAgent(argv: string[], what: string): Promise<Agent> {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      // spawn failed (ENOENT...): the error event tells why
      const err = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`${what}: ${err.message}`);
    }
    const pid = child.pid;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const proc: Proc = {
      child, pid, hasExited: false,
      exited: new Promise((resolve) => child.once('exit', () => {
        proc.hasExited = true;
        resolve();
      })),
    };
    procs.push(proc);

    // answers come back in command order, so a FIFO of waiters is enough
    const waiting: { resolve: (a: AgentAnswer & { ready?: boolean; pid?: number; mntNs?: number }) => void; reject: (e: Error) => void }[] = [];
    const lines = readline.createInterface({ input: child.stdout!, terminal: false });
    lines.on('line', (line) => {
      const w = waiting.shift();
      if (!w) return;
      try {
        w.resolve(JSON.parse(line));
      } catch {
        w.reject(new Error(`${what} (pid ${pid}) answered non-JSON: ${line}`));
      }
    });
    void proc.exited.then(() => {
      for (const w of waiting.splice(0)) w.reject(new Error(`${what} (pid ${pid}) exited${stderr ? `: ${stderr.trim()}` : ''}`));
    });
    child.stdin!.on('error', () => { /* EPIPE after the agent died: the exit rejection says it */ });

    function next(timeoutMs: number, label: string): Promise<AgentAnswer & { ready?: boolean; pid?: number; mntNs?: number }> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`${what} (pid ${pid}): no answer to ${label} within ${timeoutMs} ms${stderr ? `: ${stderr.trim()}` : ''}`));
          // the answer stream is now out of step with the commands: this agent is unusable
          killProc(proc);
        }, timeoutMs);
        waiting.push({
          resolve: (a) => { clearTimeout(timer); resolve(a); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
      });
    }

    const ready = await next(SEND_TIMEOUT_MS, 'startup').catch((e: Error) => {
      killProc(proc);
      throw e;
    });
    if (!ready.ready) throw new Error(`${what} (pid ${pid}): unexpected first line ${JSON.stringify(ready)}`);
    if (ready.pid !== pid) {
      // we would be tracking (and killing) the wrong process
      killProc(proc);
      throw new Error(`${what}: spawned pid ${pid} but the agent runs as pid ${ready.pid}`);
    }
    const mntNs = mntNsOf(pid);
    if (mntNs !== ready.mntNs) throw new Error(`${what}: /proc/${pid}/ns/mnt is ${mntNs}, agent says ${ready.mntNs}`);

    async function send(cmd: AgentCommand): Promise<AgentAnswer> {
      if (proc.hasExited) throw new Error(`${what} (pid ${pid}) has exited`);
      const answer = next(SEND_TIMEOUT_MS, cmd.op);
      child.stdin!.write(JSON.stringify(cmd) + '\n');
      const a = await answer;
      if (!a.error) await afterSuccess(cmd, a);
      return a;
    }

    // what the agent did to the host must be undone by cleanup, so record it here
    async function afterSuccess(cmd: AgentCommand, a: AgentAnswer): Promise<void> {
      if (cmd.op === 'pin') recordPin(pid, cmd.path);
      if (cmd.op === 'mountBpffs' && mntNs === hostMntNs && a.dev) recordMount({ path: cmd.path, dev: a.dev }, `bpffs at ${cmd.path} (mounted by agent ${pid})`);
    }

    const agent: Agent = {
      pid, mntNs,
      get alive() { return !proc.hasExited; },
      send,
      async call(cmd) {
        const a = await send(cmd);
        if (a.error) throw new Error(`${what} (pid ${pid}) ${cmd.op}: ${a.error}`);
        return a;
      },
      async exit() {
        if (proc.hasExited) return;
        child.stdin!.write(JSON.stringify({ op: 'exit' }) + '\n');
        child.stdin!.end();
        await waitOrKill(proc);
      },
      async kill() {
        killProc(proc);
        await proc.exited;
      },
    };
    return agent;
  }

  /**
   * A pin is identified by the (dev, inode) it had when made, read through the
   * agent's root so it works from any namespace. Cleanup unlinks the host path only
   * when that same file is still there: pins made in another namespace's own bpffs
   * are not visible from here (they go away with that namespace).
   */
  function recordPin(agentPid: number, pinPath: string): void {
    let id: fs.BigIntStats;
    try {
      id = fs.statSync(`/proc/${agentPid}/root${pinPath}`, { bigint: true });
    } catch {
      return; // cannot see it: nothing we could safely unlink later either
    }
    record(`pin ${pinPath}`, () => {
      let now: fs.BigIntStats;
      try {
        now = fs.lstatSync(pinPath, { bigint: true });
      } catch {
        return; // gone already (unpinned by the test, or not visible in the host namespace)
      }
      if (now.dev === id.dev && now.ino === id.ino) fs.unlinkSync(pinPath);
    });
  }

  function killProc(p: Proc): void {
    if (p.hasExited) return;
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* ESRCH: exited, not yet reaped */
    }
  }

  async function waitOrKill(p: Proc): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      p.exited.then(() => false),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(true), EXIT_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      killProc(p);
      await p.exited;
    }
  }

  async function spawnAgent(opts: { unshareMount?: boolean; joinMountOf?: number } = {}): Promise<Agent> {
    const node = process.execPath;
    if (opts.joinMountOf !== undefined) {
      // nsenter execs node after setns, so again the pid is the agent's own
      return startAgent(['nsenter', `--mount=/proc/${opts.joinMountOf}/ns/mnt`, '--', node, AGENT_PATH], 'agent (nsenter -m)');
    }
    if (opts.unshareMount) {
      // unshare execs node after unshare(CLONE_NEWNS), so the pid we get is the agent's
      return startAgent(['unshare', '-m', '--propagation', 'private', node, AGENT_PATH], 'agent (unshare -m)');
    }
    return startAgent([node, AGENT_PATH], 'agent');
  }

  async function namespaceWithoutProcess(opts: { mapName?: string } = {}): Promise<DetachedNamespace> {
    await ensurePrivateDir();
    const nsfsPath = fresh('mntns');
    fs.writeFileSync(nsfsPath, ''); // the nsfs bind target is a plain file
    const mountPoint = fresh('ns-bpffs'); // exists in the new namespace too: it is a copy of ours
    fs.mkdirSync(mountPoint);
    // `unshare --mount=FILE` forks a helper that bind-mounts /proc/<agent>/ns/mnt onto
    // FILE in our namespace, then execs the agent in the new one.
    const agent = await startAgent(
      ['unshare', `--mount=${nsfsPath}`, '--propagation', 'private', process.execPath, AGENT_PATH],
      'agent (unshare --mount=FILE)',
    );
    const top = topMountAt(nsfsPath);
    if (!top || top.fstype !== 'nsfs') {
      await agent.kill();
      throw new Error(`no nsfs bind mount at ${nsfsPath}`);
    }
    hostMounts.push({ path: nsfsPath, dev: top.dev });
    record(`namespace ${agent.mntNs} bound at ${nsfsPath}`, async () => {
      const now = topMountAt(nsfsPath);
      if (!now || now.fstype !== 'nsfs') return;
      // tear down inside first (the namespace could be held by something else too),
      // then drop the nsfs mount: with it the namespace, its bpffs and the pinned map go
      try {
        await run('nsenter', [`--mount=${nsfsPath}`, 'umount', '-l', mountPoint]);
      } catch {
        /* already unmounted inside */
      }
      try {
        await run('umount', [nsfsPath]);
      } catch {
        await run('umount', ['-l', nsfsPath]);
      }
    });
    const nsIno = Number(fs.statSync(nsfsPath).ino);
    if (nsIno !== agent.mntNs) throw new Error(`${nsfsPath} has inode ${nsIno}, agent is in ${agent.mntNs}`);

    const fsm = await agent.call({ op: 'mountBpffs', path: mountPoint });
    const map = await agent.call({ op: 'map', name: opts.mapName ?? 'ns_orphan', type: 'hash' });
    const pinPath = path.join(mountPoint, 'orphan');
    await agent.call({ op: 'pin', fd: map.fd!, path: pinPath });
    await agent.call({ op: 'close', fd: map.fd! });
    await agent.exit();
    return { nsfsPath, mntNs: agent.mntNs, bpffsMountPoint: mountPoint, bpffsDev: fsm.dev!, pinPath, pinnedMapId: map.id! };
  }

  async function makeCgroup(): Promise<string> {
    const cg = path.join(CGROUP_ROOT, `pinleak-test-${process.pid}-${++cgroupCounter}-${Math.random().toString(36).slice(2, 8)}`);
    fs.mkdirSync(cg);
    record(`cgroup ${cg}`, async () => {
      if (!fs.existsSync(cg)) return;
      // our processes are dead by now, but a killed task leaves the cgroup a moment later
      for (let i = 0; ; i++) {
        try {
          fs.rmdirSync(cg);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 50) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    return cg;
  }

  // Synchronous best effort for the process 'exit' hook, when a test never called
  // cleanup(): kill, lazily unmount what we mounted in the host namespace (the nsfs
  // mount drops its namespace with it), remove the temp dir once nothing is mounted
  // in it. Pins in bpffs instances we do not own are left: unlinking needs care
  // (the dev:ino check) that the async cleanup() does.
  function emergency(): void {
    for (const p of procs) killProc(p);
    for (const m of [...hostMounts].reverse()) {
      if (topMountAt(m.path)?.dev !== m.dev) continue; // gone, or not ours on top
      try {
        execFileSync('umount', ['-l', m.path], { stdio: 'ignore' });
      } catch {
        /* not mounted any more */
      }
    }
    removeTree(dir);
  }
  emergencyHooks.add(emergency);

  async function cleanup(): Promise<void> {
    if (cleaned) return;
    cleaned = true;
    const problems: Error[] = [];
    const attempt = async (what: string, fn: () => void | Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        problems.push(new Error(`${what}: ${errText(e)}`));
      }
    };

    // 1. processes: they may hold fds, mmaps or cwds that keep mounts busy
    for (const p of procs) killProc(p);
    for (const p of procs) await attempt(`wait for pid ${p.pid}`, () => waitOrKill(p));

    // 2. everything else, newest first (pins before the mounts they live on, ...)
    for (const step of steps.reverse()) await attempt(step.what, step.undo);

    // 3. the temp dir; never recursively delete through a mount that is still there
    await attempt(`remove ${dir}`, () => removeTree(dir));

    emergencyHooks.delete(emergency);
    if (problems.length) {
      throw new AggregateError(problems, `world cleanup left ${problems.length} problem(s):\n${problems.map((p) => '  ' + p.message).join('\n')}`);
    }
  }

  return {
    dir,
    hostMntNs,
    mountBpffs,
    bindMount,
    spawnAgent,
    namespaceWithoutProcess,
    makeCgroup,
    onCleanup: (what, undo) => record(what, undo),
    cleanup,
  };
}
