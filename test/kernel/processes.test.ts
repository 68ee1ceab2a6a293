// The process scan from the count guard's iterator read (task_file, task_vma) against the
// procfs scan it replaces: the same BPF fds with the same ids and map types, the same
// namespace and perf event fds, and every mapping of a map named exactly.
import { describe, expect, it } from 'vitest';
import { worldForFile } from '../world/for-file.js';
import { scanProcesses, type ProcessScan } from '../../src/scan/processes.js';
import { readKernelCounts } from '../../src/kernel/iterators.js';
import { readNetNs } from '../../src/kernel/procfs.js';

const t = worldForFile();

const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_CPU_CLOCK = 0;

/** One process's part of a scan, in comparable form. */
function of(ps: ProcessScan, pid: number) {
  return {
    process: ps.processes.get(pid),
    bpfFds: ps.bpfFds.filter((f) => f.pid === pid),
    nsFds: ps.nsFds.filter((f) => f.pid === pid),
    netNsFds: ps.netNsFds.filter((f) => f.pid === pid),
    perfFds: ps.perfFds.filter((f) => f.pid === pid),
  };
}

describe('process scan from the iterators', () => {
  it('every process as procfs gives it: pid, start time, comm, parent and mount namespace, from the task iterator', async () => {
    const agent = await t.world.spawnAgent(); // a process of the test's own, alive throughout
    const fromKernel = scanProcesses({ mmaps: false, kernel: readKernelCounts() });
    const fromProcfs = scanProcesses({ mmaps: false });
    const common = [...fromKernel.processes.keys()].filter((pid) => fromProcfs.processes.has(pid));
    // processes that started, ended, exec'd or changed namespace between the two reads are the
    // only difference (other suites run beside this one)
    expect(common.length).toBeGreaterThan(Math.max(fromKernel.processes.size, fromProcfs.processes.size) - 20);
    const differ = common.filter((pid) => JSON.stringify(fromKernel.processes.get(pid)) !== JSON.stringify(fromProcfs.processes.get(pid)));
    expect(differ.length, JSON.stringify(differ.map((pid) => [fromKernel.processes.get(pid), fromProcfs.processes.get(pid)]))).toBeLessThanOrEqual(5);
    expect(fromKernel.processes.get(agent.pid)).toEqual(fromProcfs.processes.get(agent.pid));
    expect(fromKernel.processes.get(agent.pid)).toMatchObject({ pid: agent.pid, ppid: process.pid });
    expect(fromKernel.processes.has(1)).toBe(true);
    expect(fromKernel.processes.get(1)).toEqual(fromProcfs.processes.get(1)); // not shown by the iterator: read from procfs
    expect(of(fromKernel, 1)).toEqual(of(fromProcfs, 1)); // its fds too
    expect(fromKernel.processes.has(process.pid)).toBe(false); // pinleak itself is not a holder
    // each process's network namespace, as its /proc/<pid>/ns/net names it
    const withNet = common.filter((pid) => fromKernel.netNsOf.has(pid));
    expect(withNet.length).toBeGreaterThan(common.length - 20);
    const netDiffer = withNet.filter((pid) => { const r = readNetNs(pid); return r !== null && r !== fromKernel.netNsOf.get(pid); });
    expect(netDiffer.length).toBeLessThanOrEqual(5);
    expect(fromKernel.netNsOf.get(agent.pid)).toBe(readNetNs(agent.pid));
  });


  it('finds what procfs finds, with no fdinfo or maps file read, and each mapping of a map by its id', async () => {
    const agent = await t.world.spawnAgent();
    const hash = await agent.call({ op: 'map', name: 'ps_hash' });
    const array = await agent.call({ op: 'map', name: 'ps_array', type: 'array' });
    const mapped = await agent.call({ op: 'map', name: 'ps_mapped', type: 'array', mmapable: true });
    await agent.call({ op: 'mmap', fd: mapped.fd! });
    await agent.call({ op: 'close', fd: mapped.fd! }); // held by its mapping alone
    const prog = await agent.call({ op: 'prog', name: 'ps_prog', progType: 'sched_cls' });
    const perf = await agent.call({ op: 'perfEvent', type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_CPU_CLOCK, pid: 0, cpu: -1 });
    // namespaces held by fds: the kernel names these fds (nsfs), the scan reads only their links
    const mntFd = await agent.call({ op: 'openFile', path: `/proc/${agent.pid}/ns/mnt` });
    const netFd = await agent.call({ op: 'openFile', path: `/proc/${agent.pid}/ns/net` });

    const counts = readKernelCounts();
    const fromKernel = scanProcesses({ mmaps: true, kernel: counts });
    const fromProcfs = scanProcesses({ mmaps: true });

    const k = of(fromKernel, agent.pid);
    expect(k).toEqual(of(fromProcfs, agent.pid));
    expect(k.bpfFds).toEqual([
      { pid: agent.pid, fd: hash.fd, kind: 'map', id: hash.id, mapType: 'hash' },
      { pid: agent.pid, fd: array.fd, kind: 'map', id: array.id, mapType: 'array' },
      { pid: agent.pid, fd: prog.fd, kind: 'prog', id: prog.id },
    ]);
    expect(k.perfFds).toEqual([{ pid: agent.pid, fd: perf.fd }]);
    expect(k.nsFds.map((f) => f.fd)).toEqual([mntFd.fd]);
    expect(k.netNsFds.map((f) => f.fd)).toEqual([netFd.fd]);
    // only nsfs and perf-event files besides the BPF ones: not every fd of every process
    expect(counts.otherFiles.filter((f) => f.pid === agent.pid)).toEqual([
      { pid: agent.pid, fd: perf.fd, what: 'perf' }, { pid: agent.pid, fd: mntFd.fd, what: 'ns' }, { pid: agent.pid, fd: netFd.fd, what: 'ns' },
    ].sort((a, b) => a.fd - b.fd));
    expect(k.process!.cgroup).not.toBeNull(); // a holder: its container is read

    // procfs sees a mapping of some map; the iterator names the map
    expect(fromProcfs.mapMappings.get(agent.pid)).toHaveLength(1);
    expect(fromKernel.mapMappings.size).toBe(0);
    expect(counts.vmas.filter((v) => v.pid === agent.pid).map((v) => v.mapId)).toEqual([mapped.id]);

    // pinleak's own fds are its scan, never holders
    expect(fromKernel.bpfFds.some((f) => f.pid === process.pid)).toBe(false);
    expect(counts.files.some((f) => f.pid === process.pid)).toBe(true);
  });
});
