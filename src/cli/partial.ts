// A gate must never pass on a scan that could not see the host.
import { inInitPidNamespace } from '../kernel/procfs.js';
import type { SnapshotDoc } from '../model.js';
import type { HostScan } from '../scan/host.js';

export function partialReasons(doc: SnapshotDoc, scan: HostScan): string[] {
  const why: string[] = [];
  if (!inInitPidNamespace()) why.push("pinleak runs in a child pid namespace and cannot see the host's processes (run it with the host's /proc, e.g. hostPID: true)");
  if (scan.processes.size === 0) why.push('no processes are visible');
  const bad = doc.namespaces.filter((n) => n.error);
  if (bad.length) why.push(`${bad.length} mount namespace(s) could not be read (${bad.map((n) => n.mntNs).join(', ')})`);
  const badInst = doc.instances.filter((i) => i.error);
  if (badInst.length) why.push(`${badInst.length} bpffs instance(s) could not be walked (${badInst.map((i) => i.dev).join(', ')})`);
  return why;
}
