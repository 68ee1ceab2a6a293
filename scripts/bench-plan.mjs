// The layout of the benchmark's pins, shared by the orchestrator (which needs the
// expected totals) and the workers (which make the pins). Pure: no I/O.
//
// One instance holds `count` pins spread over nested directories, the way agents lay
// them out: <root>/<app>/<pid-like dir>/<name>, 25 pins per leaf directory. Apps come
// from a list that mixes owners the catalog calls persistent (cilium, calico) with
// ones it does not (otel-go, tetragon, inspektor-gadget) and unknown ones. One leaf in
// five is named after the pid of the live process that made the pins, the others
// after a pid no process has when the pins are made (a creator that is gone). Object
// mix: by default every 10th pin is a program (socket_filter or cgroup_skb, half of them
// referencing the map pinned just before), the rest are small hash and array maps;
// progShare sets another share of programs (0.27: a Kubernetes node's 9,500 programs in
// 35,000 pins), spread evenly the same way.
// About one pin in 33 has its object held open by its creator; all other fds are
// closed right after pinning, so only the pin keeps the object alive.
//
// Every choice is offset by the instance index, so the mix (apps, live/dead pids,
// programs, held objects) is the same fraction of the pins at 20 pins per instance as
// at 700: time per pin can be compared across scales.

export const PIN_LEAF = 25;
const APPS = ['otel', 'cilium', 'tetragon', 'agent', 'calico', 'gadget', 'tracer', 'netpol'];

/**
 * The pins of one instance: [{rel, kind, name, mapType?, progType?, withMap?, hold}].
 * deadPid(leaf) names a pid that is not running (the worker probes /proc).
 */
export function planInstance(instanceIndex, count, livePid, deadPid = (leaf) => 30000 + leaf, progShare = 0.1) {
  const out = [];
  const pidOf = new Map();
  for (let k = 0; k < count; k++) {
    const leaf = Math.floor(k / PIN_LEAF);
    const slot = instanceIndex + leaf;
    if (!pidOf.has(leaf)) pidOf.set(leaf, slot % 5 === 0 ? livePid : deadPid(leaf));
    const base = `${APPS[slot % APPS.length]}/${pidOf.get(leaf)}`;
    // pin k is a program when the running count of programs steps up (k = 9, 19, ... at 0.1);
    // the integer form keeps 0.1 exact
    const per = Math.round(progShare * 1000);
    const isProg = Math.floor(((k + 1) * per) / 1000) > Math.floor((k * per) / 1000);
    const hold = (k + instanceIndex * 13) % 33 === 5;
    if (isProg) {
      const n = instanceIndex + Math.floor((k * per) / 1000);
      out.push({
        rel: `${base}/prog_${k}`, kind: 'prog', name: `bp${instanceIndex}_${k}`.slice(0, 15),
        progType: n % 2 === 0 ? 'socket_filter' : 'cgroup_skb', withMap: Math.floor(n / 2) % 2 === 0, hold,
      });
    } else {
      out.push({
        rel: `${base}/map_${k}`, kind: 'map', name: `bm${instanceIndex}_${k}`.slice(0, 15),
        mapType: k % 2 === 0 ? 'hash' : 'array', hold,
      });
    }
  }
  return out;
}

/** Totals of a plan, without needing the live pid. */
export function planTotals(instanceIndex, count, progShare = 0.1) {
  const t = { pins: 0, maps: 0, progs: 0, progsWithMap: 0, held: 0 };
  for (const p of planInstance(instanceIndex, count, 1, undefined, progShare)) {
    t.pins++;
    if (p.kind === 'map') t.maps++;
    else {
      t.progs++;
      if (p.withMap) t.progsWithMap++;
    }
    if (p.hold) t.held++;
  }
  return t;
}

/** Splits `total` pins over `n` instances as evenly as possible. */
export function splitPins(total, n) {
  const base = Math.floor(total / n);
  return Array.from({ length: n }, (_, i) => base + (i < total % n ? 1 : 0));
}
