// Runs test/world/pinner.mjs: a process that pins one object and exits, optionally in a
// mount namespace and a cgroup of its own (a "container" that lived a few ms).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PINNER_PATH = fileURLToPath(new URL('./pinner.mjs', import.meta.url));

export interface Pinned {
  pid: number;
  ppid: number;
  startTime: number;
  kind: 'map' | 'prog' | 'link';
  id: number;
  mntNs: number;
  /** the errno code of the second pin of mode `twice` */
  error: string | null;
}

export async function runPinner(opts: {
  kind: 'map' | 'prog' | 'link'; path: string; mode?: 'abs' | 'rel' | 'pathfd' | 'twice'; count?: number;
  /** a cgroup v2 directory to run in (created by World.makeCgroup) */
  cgroup?: string;
  /** in a new private mount namespace */
  unshareMount?: boolean;
}): Promise<Pinned> {
  const args = [PINNER_PATH, opts.kind, opts.path, opts.mode ?? 'abs', String(opts.count ?? 1)].map((s) => `'${s}'`).join(' ');
  const join = opts.cgroup ? `echo $$ > '${opts.cgroup}/cgroup.procs' && ` : '';
  const script = `${join}exec '${process.execPath}' ${args}`;
  const argv = opts.unshareMount ? ['-m', '--propagation', 'private', 'sh', '-c', script] : ['-c', script];
  const { stdout } = await run(opts.unshareMount ? 'unshare' : 'sh', argv, { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Pinned;
}
