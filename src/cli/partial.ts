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
  // an instance with an error, or one whose walk left a subtree unread
  const badInst = new Set(doc.instances.filter((i) => i.error).map((i) => i.dev));
  for (const e of doc.errors) if (e.scope.startsWith('instance ')) badInst.add(e.scope.slice('instance '.length));
  if (badInst.size) why.push(`${badInst.size} bpffs instance(s) could not be walked whole (${[...badInst].join(', ')})`);
  return why;
}
