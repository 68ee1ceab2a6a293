// From a cgroup v2 id (what bpf_get_current_cgroup_id gives: the cgroup directory's inode
// number) to the cgroup's path, by walking the cgroup2 mount once and caching what it saw.
// Ids are never reused within a boot, so a cached answer stays right.
import fs from 'node:fs';
import path from 'node:path';

/** A walk stops after this many directories (a host has hundreds to a few thousand). */
export const CGROUP_WALK_LIMIT = 100_000;

/** The cgroup2 mount point of this mount namespace, from /proc/self/mountinfo; null without one. */
export function cgroup2Mount(): string | null {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre!.split(' ')[4]!.replace(/\\040/g, ' ');
  }
  return null;
}

export interface CgroupResolver {
  /** the cgroup's path below the hierarchy's root ("/" for the root), or null when no such cgroup exists now */
  pathOf(id: bigint): string | null;
}

/**
 * A resolver over `root` (the cgroup2 mount). A miss walks the tree again, at most once
 * per `minWalkIntervalMs`, so a burst of pins from cgroups already gone costs one walk.
 */
export function cgroupResolver(root: string | null = cgroup2Mount(), minWalkIntervalMs = 1000): CgroupResolver {
  const known = new Map<bigint, string>();
  let lastWalk = -Infinity;
  const walk = () => {
    if (root === null) return;
    lastWalk = performance.now();
    const queue = ['/'];
    for (let i = 0; i < queue.length && i < CGROUP_WALK_LIMIT; i++) {
      const rel = queue[i]!;
      const abs = path.join(root, rel);
      try {
        known.set(BigInt(fs.statSync(abs, { bigint: true }).ino), rel);
        for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
          if (e.isDirectory()) queue.push(path.posix.join(rel, e.name));
        }
      } catch {
        /* removed while walking */
      }
    }
  };
  return {
    pathOf(id) {
      const hit = known.get(id);
      if (hit !== undefined || performance.now() - lastWalk < minWalkIntervalMs) return hit ?? null;
      walk();
      return known.get(id) ?? null;
    },
  };
}
