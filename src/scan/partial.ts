// A scan that cannot see the whole host is partial (SPEC section 2): every command says
// so, clean never acts on it, gate and --fail-on-leak exit 2 on it. Each reason names
// what was not seen and, where there is one, the fix.
import { inInitPidNamespace } from '../kernel/procfs.js';
import type { HostScan } from './host.js';
import { plural } from '../plural.js';

export type ScanView = Pick<HostScan, 'processes' | 'unreadableProcesses' | 'namespaces' | 'instances' | 'errors'>;

export function partialReasons(scan: ScanView, inHostPidNs = inInitPidNamespace()): string[] {
  const why: string[] = [];
  if (!inHostPidNs) {
    why.push("pinleak runs in a child pid namespace and cannot see the host's processes (run it in the host's pid namespace: hostPID: true, or outside the container)");
  }
  if (scan.processes.size === 0) why.push('no processes are visible');
  if (scan.unreadableProcesses.length) {
    const pids = scan.unreadableProcesses;
    why.push(`the fds of ${plural(pids.length, 'process', 'processes')} could not be read (${pids.slice(0, 5).join(', ')}${pids.length > 5 ? ', …' : ''}): run pinleak as root with CAP_SYS_PTRACE`);
  }
  const bad = scan.namespaces.filter((n) => n.error);
  if (bad.length) why.push(`${plural(bad.length, 'mount namespace')} could not be read (${bad.map((n) => n.mntNs).join(', ')})`);
  // an instance with an error, or one whose walk left a subtree unread
  const badInst = new Set(scan.instances.filter((i) => i.error).map((i) => i.dev));
  for (const e of scan.errors) if (e.scope.startsWith('instance ')) badInst.add(e.scope.slice('instance '.length));
  if (badInst.size) why.push(`${plural(badInst.size, 'bpffs instance')} could not be walked whole (${[...badInst].join(', ')})`);
  return why;
}
