// Entering a mount namespace that no process is in. Node is multithreaded, so it can
// never setns(CLONE_NEWNS) itself: a single-threaded helper (nsenter) enters the
// namespace and stays there as an anchor, and pinleak reads the namespace through
// /proc/<anchor>/root and /proc/<anchor>/mountinfo like any other process's.
import { spawn, type ChildProcess } from 'node:child_process';
import { readMntNs, readStat } from './procfs.js';

export interface Anchor {
  pid: number;
  release(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `nsenter --mount=<file> -- cat` with a pipe on stdin: cat waits on that pipe, so
 * the anchor ends by itself if pinleak dies without releasing it.
 */
export async function enterNamespace(file: string, expectedNs: number, timeoutMs = 5000): Promise<Anchor> {
  let child: ChildProcess;
  try {
    child = spawn('nsenter', [`--mount=${file}`, '--', 'cat'], { stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`nsenter could not be started: ${(e as Error).message}`);
  }
  let stderr = '';
  let exited: number | null = null;
  let spawnError: Error | null = null;
  child.stderr!.on('data', (d) => (stderr += d));
  child.on('error', (e) => (spawnError = e));
  child.on('exit', (code) => (exited = code ?? -1));
  const release = () => {
    child.stdin?.destroy();
    if (exited === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`nsenter could not be started: ${(spawnError as Error).message} (install util-linux)`);
    if (exited !== null) break;
    // In the namespace and past exec: a cat that is missing there makes nsenter exit instead.
    if (child.pid && readMntNs(child.pid) === expectedNs && readStat(child.pid)?.comm === 'cat') {
      return { pid: child.pid, release };
    }
    await sleep(5);
  }
  release();
  const why = stderr.trim().split('\n').pop() || (exited !== null ? `nsenter exited with code ${exited}` : 'timed out');
  throw new Error(why);
}
