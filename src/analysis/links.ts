// Links on a process (uprobe_multi): live while the process they probe is (SPEC section 2,
// "a link whose target is gone ... is leaked"). The kernel reports the probed process's
// pid, and 0 once that process has exited; 0 also means "every process", so only an
// earlier sighting of a pid can tell that a link with pid 0 lost its process.

export interface ProcessTarget {
  defunct: boolean;
  /** what the link is attached to, for reasons; null when not known */
  target: string | null;
}

/**
 * targetPid: what the kernel reports now; state: that process's state letter from
 * /proc/<pid>/stat (null when it is gone); seenPid: the pid an earlier snapshot of this
 * boot saw for the same link, if any.
 */
export function processTarget(targetPid: number, state: { comm: string; state: string } | null, seenPid?: number): ProcessTarget {
  if (targetPid > 0) {
    // a zombie is not live (SPEC section 2); a pid the kernel still reports is never a reused one
    if (!state || state.state === 'Z') return { defunct: true, target: null };
    return { defunct: false, target: `process ${targetPid} (${state.comm})` };
  }
  if (seenPid) return { defunct: true, target: null };
  return { defunct: false, target: null };
}
