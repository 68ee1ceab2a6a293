// The layout of the benchmark's pins, shared by the orchestrator (which needs the
// expected totals) and the workers (which make the pins). Pure: no I/O.
//
// One instance holds `count` pins spread over nested directories, the way agents lay
// them out: <root>/<app>/<pid-like dir>/<name>, 25 pins per leaf directory, 4 leaf
// directories per app directory. One leaf in five is named after the pid of the live
// process that made the pins, the others after pids above pid_max (a process that is
// gone). Object mix: every 10th pin is a program (socket_filter and cgroup_skb in
// turn, half of them referencing the map pinned just before), the rest are small hash
// and array maps. Every 33rd pin's object stays open in its creator (held); all other
// fds are closed right after pinning, so only the pin keeps the object alive.

export const PIN_LEAF = 25;
export const LEAVES_PER_APP = 4;
const APPS = ['otel', 'cilium', 'calico', 'tc', 'xdp', 'agent', 'tracer', 'netpol'];

/** The pins of one instance: [{rel, kind, name, mapType?, progType?, withMap?, hold}] */
export function planInstance(instanceIndex, count, livePid) {
  const out = [];
  for (let k = 0; k < count; k++) {
    const leaf = Math.floor(k / PIN_LEAF);
    const appIndex = Math.floor(leaf / LEAVES_PER_APP);
    const app = APPS[appIndex % APPS.length] + (appIndex >= APPS.length ? `-${Math.floor(appIndex / APPS.length)}` : '');
    const pidDir = leaf % 5 === 0 ? livePid : 4_200_000 + instanceIndex * 1000 + leaf;
    const isProg = k % 10 === 9;
    const hold = k % 33 === 5;
    const base = `${app}/${pidDir}`;
    if (isProg) {
      const n = Math.floor(k / 10);
      out.push({
        rel: `${base}/prog_${k}`, kind: 'prog', name: `bp${instanceIndex}_${k}`.slice(0, 15),
        progType: n % 2 === 0 ? 'socket_filter' : 'cgroup_skb', withMap: n % 4 < 2, hold,
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
export function planTotals(instanceIndex, count) {
  const t = { pins: 0, maps: 0, progs: 0, progsWithMap: 0, held: 0 };
  for (const p of planInstance(instanceIndex, count, 1)) {
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
