// From the text of /proc/<pid>/cgroup to the container, pod or systemd unit the process runs
// in (facts in CONTAINERS.md). Pure: the caller reads the file (from the host pid namespace).
import type { Container } from '../model.js';

const HEX64 = '[0-9a-f]{64}';
const ID_RE = new RegExp(`^${HEX64}$`);
const ECS_ID_RE = /^[0-9a-f]{32}-[0-9]{10}$/;

/** Scope units that hold a container: `<prefix><64 hex>.scope`. conmon scopes are skipped. */
const SCOPE_RUNTIMES: [RegExp, string][] = [
  [new RegExp(`^docker-(${HEX64})\\.scope$`), 'docker'],
  [new RegExp(`^cri-containerd-(${HEX64})\\.scope$`), 'containerd'],
  [new RegExp(`^crio-(${HEX64})\\.scope$`), 'cri-o'],
  [new RegExp(`^libpod-(${HEX64})\\.scope$`), 'podman'],
];

/** cgroup v1 without the systemd driver: `<pod slice>:<runtime prefix>:<64 hex>` in one component. */
const COLON_RE = new RegExp(`^(.*):([a-z-]+):(${HEX64})$`);
const COLON_RUNTIMES: Record<string, string> = { 'cri-containerd': 'containerd', crio: 'cri-o', docker: 'docker', libpod: 'podman' };

/** Pod slices of the systemd driver: kubepods-pod<uid>.slice (guaranteed), kubepods-<qos>-pod<uid>.slice. */
const POD_SLICE_RE = /^kubepods(?:-[a-z]+)?-pod([0-9a-fA-F_-]+)\.slice$/;
/** The cgroupfs driver: /kubepods[/<qos>]/pod<uid>/<id>. */
const POD_DIR_RE = /^pod([0-9a-fA-F-]+)$/;

const UNIT_RE = /\.(service|scope|socket|mount|swap|slice)$/;

interface Line {
  hierarchy: string;
  controllers: string[];
  path: string;
}

function parseLines(text: string): Line[] {
  const out: Line[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    // N:controllers:path; the path itself may hold ':' (the containerd colon form)
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    let path = line.slice(b + 1);
    // a cgroup removed under a zombie reads "/path (deleted)"
    path = path.replace(/ \(deleted\)$/, '');
    out.push({ hierarchy: line.slice(0, a), controllers: line.slice(a + 1, b).split(','), path });
  }
  return out;
}

function podUidOf(comps: string[], upTo: number): string | null {
  for (let i = upTo; i >= 0; i--) {
    const c = comps[i]!;
    const colon = c.indexOf(':');
    const m = POD_SLICE_RE.exec(colon >= 0 ? c.slice(0, colon) : c);
    if (m) return m[1]!.replace(/_/g, '-');
    const d = POD_DIR_RE.exec(c);
    if (d && comps.slice(0, i).some((p) => p.startsWith('kubepods'))) return d[1]!;
  }
  return null;
}

/** Classify one cgroup path; null when it names neither a container nor a systemd unit. */
export function containerFromPath(path: string): Container | null {
  const comps = path.split('/').filter((c) => c !== '');
  if (comps.length === 0) return null;
  const make = (runtime: string, id: string | null, at: number): Container => ({
    runtime,
    id,
    podUid: podUidOf(comps, at),
    cgroup: path,
  });

  // Containers first, scanning from the innermost component: a container's own nested
  // cgroups (…/docker-<id>.scope/init.scope, …/libpod-<id>.scope/container) must not be
  // mistaken for a systemd unit of the host.
  for (let i = comps.length - 1; i >= 0; i--) {
    const c = comps[i]!;
    for (const [re, runtime] of SCOPE_RUNTIMES) {
      const m = re.exec(c);
      if (m) return make(runtime, m[1]!, i);
    }
    const colon = COLON_RE.exec(c);
    if (colon && COLON_RUNTIMES[colon[2]!]) return make(COLON_RUNTIMES[colon[2]!]!, colon[3]!, i);
    if (ECS_ID_RE.test(c)) return make('ecs', c, i);
    if (ID_RE.test(c)) {
      const above = comps.slice(0, i);
      const parent = above[above.length - 1];
      let runtime: string;
      if (above.includes('ecs')) runtime = 'ecs';
      else if (parent === 'docker' || parent === 'actions_job') runtime = 'docker';
      // kubepods with the cgroupfs driver ("containerd or others"), and containerd's own
      // /<namespace>/<id> layout (/default, /k8s.io, /moby …)
      else runtime = 'containerd';
      return make(runtime, c, i);
    }
    // rootless podman's own scope (podman-<pid>.scope): podman, container not known
    if (/^podman-[0-9]+\.scope$/.test(c)) return make('podman', null, i);
  }

  // Then systemd units: the innermost one (a service, a session scope, user@<uid>.service's
  // app scopes …). crio-conmon-*/libpod-conmon-* scopes end up here: they are not containers.
  for (let i = comps.length - 1; i >= 0; i--) {
    if (UNIT_RE.test(comps[i]!)) return make('systemd', comps[i]!, i);
  }
  return null;
}

/**
 * The container (or systemd unit) of a process from its /proc/<pid>/cgroup text. The cgroup
 * v2 line `0::/path` is preferred, then the v1 `name=systemd` line, then `memory`. On hybrid
 * hosts the v2 line can point at the runtime's service while the v1 lines hold the
 * container, so the first of those paths that shows a container wins, else the first that
 * shows a systemd unit. `0::/` alone (a process in its own cgroup namespace) gives null.
 */
export function containerFromCgroup(cgroupFileText: string): Container | null {
  const lines = parseLines(cgroupFileText);
  const v2 = lines.find((l) => l.hierarchy === '0' && l.controllers.length === 1 && l.controllers[0] === '');
  const systemd = lines.find((l) => l.controllers.includes('name=systemd'));
  const memory = lines.find((l) => l.controllers.includes('memory'));
  const found = [v2, systemd, memory]
    .filter((l): l is Line => l !== undefined)
    .map((l) => containerFromPath(l.path))
    .filter((c): c is Container => c !== null);
  return found.find((c) => c.runtime !== 'systemd') ?? found[0] ?? null;
}
