import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  builtinCatalog,
  globMatch,
  globProblem,
  globSpecificity,
  loadCatalog,
  matchOwner,
  nameHasPrefix,
  ownerRuleProblem,
  pathPid,
  type OwnerRule,
} from '../../src/analysis/owners.js';
import { PinleakError } from '../../src/errors.js';

const PID_MAX = 4194304;

describe('globMatch', () => {
  it('* stays within one component', () => {
    expect(globMatch('tc/globals/cilium_*', 'tc/globals/cilium_calls_00123')).toBe(true);
    expect(globMatch('tc/globals/cilium_*', 'tc/globals/cilium_ct4_global:pending')).toBe(true);
    expect(globMatch('tc/globals/cilium_*', 'tc/globals/x/cilium_a')).toBe(false);
    expect(globMatch('tc/*', 'tc/globals/a')).toBe(false);
    expect(globMatch('*', 'a')).toBe(true);
  });

  it('** spans components, needs something below a directory, and may be empty in the middle or front', () => {
    expect(globMatch('cilium/**', 'cilium/devices/eth0/links/cil_from_netdev')).toBe(true);
    expect(globMatch('cilium/**', 'cilium')).toBe(false);
    expect(globMatch('cilium/**', 'ciliumx/a')).toBe(false);
    expect(globMatch('**/orphan', 'orphan')).toBe(true);
    expect(globMatch('**/orphan', 'a/b/orphan')).toBe(true);
    expect(globMatch('**/orphan', 'a/b/orphan2')).toBe(false);
    expect(globMatch('a/**/b', 'a/b')).toBe(true);
    expect(globMatch('a/**/b', 'a/x/y/b')).toBe(true);
    expect(globMatch('a/**/**/b', 'a/x/b')).toBe(true);
    expect(globMatch('**', 'anything/at/all')).toBe(true);
  });

  it('? and classes match one character, never /', () => {
    expect(globMatch('map?', 'map1')).toBe(true);
    expect(globMatch('map?', 'map12')).toBe(false);
    expect(globMatch('a?b', 'a/b')).toBe(false);
    expect(globMatch('v[46]_*', 'v4_ct')).toBe(true);
    expect(globMatch('v[!4]_*', 'v4_ct')).toBe(false);
    expect(globMatch('v[0-9]', 'v7')).toBe(true);
    expect(globMatch('a[]]', 'a]')).toBe(true);
  });

  it('ignores a leading / on either side, and escapes regex characters', () => {
    expect(globMatch('/app/**', 'app/x')).toBe(true);
    expect(globMatch('app/**', '/app/x')).toBe(true);
    expect(globMatch('maps.debug', 'mapsXdebug')).toBe(false);
    expect(globMatch('a+b(c)', 'a+b(c)')).toBe(true);
    expect(globMatch('a\\*b', 'a*b')).toBe(true);
    expect(globMatch('a\\*b', 'axb')).toBe(false);
  });

  it('{pid} is a decimal pid (no leading zero, at most 7 digits), {n} any digits', () => {
    expect(globMatch('{pid}/**', '4242/alloc_map')).toBe(true);
    expect(globMatch('{pid}/**', '0123/alloc_map')).toBe(false);
    expect(globMatch('{pid}/**', '0/alloc_map')).toBe(false);
    expect(globMatch('{pid}/**', '12345678/alloc_map')).toBe(false);
    expect(globMatch('{pid}/**', '12a/alloc_map')).toBe(false);
    expect(globMatch('beyla-{pid}/**', 'beyla-77/m')).toBe(true);
    expect(globMatch('prog_{n}', 'prog_0042')).toBe(true);
    expect(globMatch('prog_{n}', 'prog_x')).toBe(false);
  });

  it('refuses malformed globs', () => {
    for (const bad of ['', '/', 'a//b', 'a/', 'a**', 'x/**y', '[abc', '{a,b}', '{pid', 'a}', 'a\\']) {
      expect(globProblem(bad), bad).not.toBeNull();
      expect(() => globMatch(bad, 'a'), bad).toThrow(PinleakError);
    }
    expect(() => globMatch('{a,b}', 'a')).toThrow(/bad glob "\{a,b\}"/);
    expect(globProblem('tc/globals/**')).toBeNull();
  });
});

describe('nameHasPrefix', () => {
  it('cuts prefixes to the 15 characters the kernel keeps', () => {
    expect(nameHasPrefix('tracked_spans_b', 'tracked_spans_by_sc')).toBe(true);
    expect(nameHasPrefix('userns_restrict', 'userns_restrict_')).toBe(true);
    expect(nameHasPrefix('cil_from_netdev', 'cil_')).toBe(true);
    expect(nameHasPrefix('cilium_calls', 'cil_')).toBe(false);
    expect(nameHasPrefix('anything', '')).toBe(false);
  });
});

describe('owners.json', () => {
  it('is valid and has no rule matching everything', () => {
    const doc = JSON.parse(readFileSync(new URL('../../src/analysis/owners.json', import.meta.url), 'utf8'));
    doc.owners.forEach((r: unknown, i: number) => expect(ownerRuleProblem(r, `owners[${i}]`)).toBeNull());
    const cat = builtinCatalog();
    expect(cat.length).toBe(doc.owners.length);
    expect(matchOwner(cat, 'some_random_pin', 'my_map')).toBeNull();
    expect(matchOwner(cat, 'myapp/events', null)).toBeNull();
  });
});

describe('matchOwner: every OWNERS.md row', () => {
  const cat = loadCatalog();
  const cases: [string, string, string | null, boolean][] = [
    // [pin path, tool, object name, persistent]
    ['/4242/alloc_map', 'otel-go-instrumentation', 'alloc_map', false],
    ['4242/tracked_spans_by_sc', 'otel-go-instrumentation', 'tracked_spans_b', false],
    ['tc/globals/cilium_calls_00123', 'cilium', 'cilium_calls_00', true],
    ['cilium/endpoints/1234/links/cil_from_container', 'cilium', 'cil_from_contai', true],
    ['cilium/devices/eth0/links/cil_from_netdev', 'cilium', null, true],
    ['tc/globals/cilium_calls_hostns_00042', 'cilium', null, true],
    ['tetragon/__base__/event_execve/prog', 'tetragon', 'event_execve', false],
    ['tetragon/default:my-policy/generic_kprobe/prog', 'tetragon', null, false],
    ['tetragon_old/__base__/execve_map', 'tetragon', 'execve_map', false],
    ['prog_1234', 'bpfman', 'pass', true],
    ['maps/1234/counter', 'bpfman', 'counter', true],
    ['xdp/dispatcher_4026531840_2_1/link_55', 'bpfman', 'xdp_dispatcher', true],
    ['xdp/dispatcher_4026531840_2_link', 'bpfman', null, true],
    ['xdp/dispatcher_4026531840_2_1/dispatcher', 'bpfman', null, true],
    ['tc-ingress/dispatcher_4026531840_2_1/link_56', 'bpfman', null, true],
    ['tc/globals/cali_v4_ct3', 'calico', 'cali_v4_ct3', true],
    ['calico/xdp/eth0_ipv4_v4_xdp_cali_jump', 'calico', null, true],
    ['calico/sockmap/calico_sk_endpoints', 'calico', null, true],
    ['ctlb/cali_ctlb_progs', 'calico', null, true],
    ['tcx/eth0/cali_tc_ingress', 'calico', null, true],
    ['calico_connect4', 'calico', 'calico_connect_', true],
    ['systemd/userns-restrict/programs/userns_restrict_sb_alloc', 'systemd', 'userns_restrict', true],
    ['systemd/userns-restrict-v2/maps/userns_ringbuffer', 'systemd', null, true],
    ['systemd/socket-ratelimit/map', 'systemd', null, true],
    ['systemd/unix-socket-protocol/maps', 'systemd', null, true],
    ['links/77', 'bpfman', null, true],
    ['tc-egress/dispatcher_4026531840_2_3/link_57', 'bpfman', null, true],
    ['xdp/dispatch-2-117/prog0-prog', 'libxdp', 'xdp_dispatcher', true],
    ['xdp/dispatch-2-117/prog0-link', 'libxdp', null, true],
    ['tc/globals/my_map', 'iproute2', 'my_map', true],
    ['tc/3e8e1d5c1a2f0e2b8a7c4f9d6e5b4a3c2d1e0f9a/jmp_map', 'iproute2', null, true],
    ['jmp_eth0', 'katran', 'root_array', true],
    ['gadget/containers', 'inspektor-gadget', 'containers', false],
    ['gadget/mntnsset_4242', 'inspektor-gadget', 'mntnsset_4242', false],
    ['ig-iter-1234', 'inspektor-gadget', null, false],
    ['beyla-4242/ongoing_server_requests', 'beyla', null, false],
    ['4242-777/ongoing_server_requests', 'beyla', null, false],
    ['otel/traces_ctx_v1', 'opentelemetry-ebpf-instrumentation', 'traces_ctx_v1', true],
    ['maps.debug', 'kernel', 'dump_bpf_map', true],
    ['/progs.debug', 'kernel', null, true],
  ];
  for (const [path, tool, name, persistent] of cases) {
    it(`${path} -> ${tool}`, () => {
      const m = matchOwner(cat, path, name);
      expect(m?.tool).toBe(tool);
      expect(m?.persistent).toBe(persistent);
      expect(m?.rule.tool).toBe(tool);
    });
  }

  // One look-alike per rule: a path next to the documented layout that the rule must not
  // claim (issue 14: a rule claiming more than its owner pins hides real leftovers).
  const lookAlikes: [string, string][] = [
    // [pin path, the tool whose rule it resembles]
    ['maps.debug.old/x', 'kernel'],
    ['x/progs.debug', 'kernel'],
    ['04242/alloc_map', 'otel-go-instrumentation'],
    ['otel/abc/events', 'otel-go-instrumentation'],
    ['otel/traces_ctx_v2', 'opentelemetry-ebpf-instrumentation'],
    ['tc/globals/sub/cilium_x', 'cilium'],
    ['cilium/state/x', 'cilium'],
    ['cilium/endpoints/abc/links/x', 'cilium'],
    ['cilium/devices/eth0/links/a/b', 'cilium'],
    ['tc/globals/calix', 'calico'],
    ['calico/other/x', 'calico'],
    ['ctlb/other', 'calico'],
    ['tetragonx/a', 'tetragon'],
    ['systemd/other/x', 'systemd'],
    ['systemd/socket-ratelimitx', 'systemd'],
    ['prog_x', 'bpfman'],
    ['links/a', 'bpfman'],
    ['maps/1/a/b', 'bpfman'],
    ['xdp/dispatcher_x', 'bpfman'],
    ['xdp/dispatcher_1_2_3/a/b', 'bpfman'],
    ['tc-ingress/other', 'bpfman'],
    ['xdp/dispatch-2-117/other', 'libxdp'],
    ['xdp/dispatch-x-117/prog0-prog', 'libxdp'],
    ['xdp/prog0-prog', 'libxdp'],
    ['jmp/x', 'katran'],
    ['gadgetx/a', 'inspektor-gadget'],
    ['beyla-x/a', 'beyla'],
    ['tc/globals/sub/map', 'iproute2'],
    ['tc/3e8e1d5c/jmp_map', 'iproute2'],
    ['tc/3E8E1D5C1A2F0E2B8A7C4F9D6E5B4A3C2D1E0F9A/jmp_map', 'iproute2'],
    ['tc/3e8e1d5c1a2f0e2b8a7c4f9d6e5b4a3c2d1e0f9a/a/b', 'iproute2'],
    ['tc/other/x', 'iproute2'],
    // iproute2 makes ip/ and xdp/ as symlinks to tc/ and the walk never follows one: a
    // real directory there is someone else's (bpftool loadall, an application)
    ['ip/globals/foo', 'iproute2'],
    ['xdp/globals/foo', 'iproute2'],
    ['xdp/my_prog', 'iproute2'],
  ];
  for (const [path, tool] of lookAlikes) {
    it(`${path} is not ${tool}'s`, () => {
      expect(matchOwner(cat, path, null)?.tool ?? null).not.toBe(tool);
    });
  }

  it('every built-in rule has a look-alike above', () => {
    const tools = new Set(lookAlikes.map(([, t]) => t));
    for (const r of cat) expect(tools, r.tool).toContain(r.tool);
  });

  it('libbpf pin-by-name / Aya pins at the root are nobody in particular', () => {
    expect(matchOwner(cat, 'events', 'events')).toBeNull();
    expect(matchOwner(cat, 'my_prog_map', null)).toBeNull();
  });

  it('the kernel preload names are only the root ones', () => {
    expect(matchOwner(cat, 'foo/maps.debug', null)).toBeNull();
  });
});

describe('matchOwner: precedence', () => {
  const cat = loadCatalog();

  it('a real xdp/ directory belongs to libxdp or bpfman where their layout says so, else to nobody known', () => {
    expect(matchOwner(cat, 'xdp/dispatch-3-99/prog1-prog', null)?.tool).toBe('libxdp');
    expect(matchOwner(cat, 'xdp/dispatcher_1_3_2/link_9', null)?.tool).toBe('bpfman');
    expect(matchOwner(cat, 'xdp/some_other_pin', null)).toBeNull();
  });

  it('cilium and calico win over iproute2 in tc/globals: the more specific glob, whatever the file order', () => {
    expect(matchOwner(cat, 'tc/globals/cilium_lxc', null)).toMatchObject({ tool: 'cilium', matched: 'rule tc/globals/cilium_*' });
    expect(matchOwner(cat, 'tc/globals/cali_v4_routes', null)?.tool).toBe('calico');
    expect(matchOwner(cat, 'tc/globals/jmp_map', null)).toMatchObject({ tool: 'iproute2', matched: 'rule tc/globals/*' });
    const reversed = [...cat].reverse();
    expect(matchOwner(reversed, 'tc/globals/cilium_lxc', null)?.tool).toBe('cilium');
    expect(matchOwner(reversed, 'tc/globals/jmp_map', null)?.tool).toBe('iproute2');
  });

  it('specificity: literals, then tokens and classes, then fewer **, then fewer * and ?', () => {
    const more = (a: string, b: string) => {
      const x = globSpecificity(a);
      const y = globSpecificity(b);
      const i = x.findIndex((v, n) => v !== y[n]);
      return i >= 0 && x[i]! > y[i]!;
    };
    expect(more('tc/globals/cilium_*', 'tc/globals/*')).toBe(true);
    expect(more('tc/{sha1}/*', 'tc/*/*')).toBe(true);
    expect(more('a/[xy]', 'a/?')).toBe(true);
    expect(more('a/*', 'a/**')).toBe(true);
    expect(more('{pid}/**', '*/**')).toBe(true);
    expect(more('tc/globals/*', 'tc/globals/cilium_*')).toBe(false);
    expect(globSpecificity('a\\*b')).toEqual([3, 0, -0, -0]); // an escaped * is a literal
    expect(globSpecificity('{pid}-{pid}/**')).toEqual([2, 2, -1, -0]);
  });

  it('a path match beats a name-prefix-only match', () => {
    // a cilium-named map pinned by iproute2 into tc/globals is cilium by path...
    expect(matchOwner(cat, 'tc/globals/cilium_x', 'tracked_spans')?.tool).toBe('cilium');
    // ...and a map named like OTel's in systemd's directory is systemd's
    expect(matchOwner(cat, 'systemd/userns-restrict/maps/alloc_map', 'alloc_map')).toMatchObject({ tool: 'systemd', matched: 'rule systemd/userns-restrict/**' });
    // a name match says so
    expect(matchOwner(cat, 'x/y', 'cilium_ipcache')?.matched).toBe('name prefix cilium_');
  });

  it('falls back to name prefixes when no path matches (e.g. OTel before v0.3.0 pinned at the root)', () => {
    expect(matchOwner(cat, 'alloc_map', 'alloc_map')?.tool).toBe('otel-go-instrumentation');
    expect(matchOwner(cat, 'go_context_to_sc', 'go_context_to_s')?.tool).toBe('otel-go-instrumentation');
    expect(matchOwner(cat, 'somewhere/else', 'cilium_ipcache')?.tool).toBe('cilium');
    expect(matchOwner(cat, 'x/y', 'tg_conf_map')?.tool).toBe('tetragon');
    expect(matchOwner(cat, 'x/y', 'balancer_ingres')?.tool).toBe('katran');
    expect(matchOwner(cat, 'x/y', 'cgroupidset_1')?.tool).toBe('inspektor-gadget');
    expect(matchOwner(cat, 'x/y', null)).toBeNull();
  });

  it('user rules win ties, in both passes', () => {
    const mine: OwnerRule[] = [
      { tool: 'my-cni', persistent: false, paths: ['tc/globals/cilium_mine_*'] },
      { tool: 'my-agent', persistent: true, names: ['alloc_map'] },
      { tool: 'my-shorter', persistent: true, names: ['alloc_'] },
    ];
    const withUser = loadCatalog(mine);
    expect(withUser[0]!.tool).toBe('my-cni');
    expect(withUser.length).toBe(cat.length + 3);
    expect(matchOwner(withUser, 'tc/globals/cilium_mine_1', 'cilium_mine_1')?.tool).toBe('my-cni');
    expect(matchOwner(withUser, 'tc/globals/cilium_other', null)?.tool).toBe('cilium');
    expect(matchOwner(withUser, 'alloc_map', 'alloc_map')?.tool).toBe('my-agent');
    expect(matchOwner(withUser, 'alloc_map', 'alloc_map')?.persistent).toBe(true);
    // a user prefix shorter than a built-in one that also matches is less specific
    expect(matchOwner(loadCatalog([mine[2]!]), 'alloc_map', 'alloc_map')?.tool).toBe('otel-go-instrumentation');
    expect(matchOwner(loadCatalog([mine[2]!]), 'x', 'alloc_other')?.tool).toBe('my-shorter');
    // a user name rule does not beat a built-in path match
    expect(matchOwner(withUser, '4242/alloc_map', 'alloc_map')?.tool).toBe('otel-go-instrumentation');
  });

  it('takes name prefixes literally, and cuts them to the kernel\'s 15 characters', () => {
    const cat = [{ tool: 'dots', persistent: false, names: ['a.b(c', 'x+y'] }, { tool: 'long', persistent: false, names: ['abcdefghijklmnopq'] }];
    expect(matchOwner(cat, 'p', 'a.b(c_map')?.tool).toBe('dots');
    expect(matchOwner(cat, 'p', 'axb(c_map')).toBeNull();
    expect(matchOwner(cat, 'p', 'x+y')?.tool).toBe('dots');
    expect(matchOwner(cat, 'p', 'xxy')).toBeNull();
    expect(matchOwner(cat, 'p', 'abcdefghijklmno')?.tool).toBe('long');
    expect(matchOwner([{ tool: 'none', persistent: false, paths: ['x/*'] }], 'p', 'anything')).toBeNull();
  });

  it('loadCatalog returns copies', () => {
    const a = loadCatalog();
    a[0]!.paths!.push('**');
    a[0]!.persistent = false;
    const b = loadCatalog();
    expect(b[0]!.paths).not.toContain('**');
    expect(b[0]!.persistent).toBe(true);
  });
});

describe('pathPid', () => {
  it('reads the first component when it is a pid with something below it', () => {
    expect(pathPid('4242/alloc_map', PID_MAX)).toBe(4242);
    expect(pathPid('/4242/alloc_map', PID_MAX)).toBe(4242);
    expect(pathPid('/1/x/y', PID_MAX)).toBe(1);
  });

  it('edge cases', () => {
    expect(pathPid('0/alloc_map', PID_MAX)).toBeNull(); // pid 0 is the idle task
    expect(pathPid('0123/alloc_map', PID_MAX)).toBeNull(); // no tool prints a leading zero
    expect(pathPid('4194304/m', PID_MAX)).toBeNull(); // pids stay below pid_max
    expect(pathPid('4194303/m', PID_MAX)).toBe(4194303);
    expect(pathPid('32768/m', 32768)).toBeNull();
    expect(pathPid('99999999999999999999/m', PID_MAX)).toBeNull();
    expect(pathPid('4242', PID_MAX)).toBeNull(); // a pin named 4242 at the root
    expect(pathPid('otel/1234/events', PID_MAX)).toBe(1234); // the first all-digit directory (SPEC example)
    expect(pathPid('otel/0123/1234/x', PID_MAX)).toBeNull(); // the first one decides, and it is no pid
    expect(pathPid('12a/x', PID_MAX)).toBeNull();
    expect(pathPid('-5/x', PID_MAX)).toBeNull();
    expect(pathPid('', PID_MAX)).toBeNull();
  });
});

describe('ownerRuleProblem', () => {
  it('names the field', () => {
    expect(ownerRuleProblem({ tool: 'x', persistent: true }, 'owners[0]')).toBe('owners[0] needs at least one entry in paths or names');
    expect(ownerRuleProblem({ tool: '', persistent: true, names: ['a'] }, 'owners[1]')).toBe('owners[1].tool must be a non-empty string');
    expect(ownerRuleProblem({ tool: 'x', persistent: 'yes', names: ['a'] }, 'o')).toBe('o.persistent must be true or false (default false)');
    expect(ownerRuleProblem({ tool: 'x', persistent: true, paths: ['a', 3] }, 'o')).toBe('o.paths[1] must be a string');
    expect(ownerRuleProblem({ tool: 'x', persistent: true, names: [''] }, 'o')).toMatch(/^o\.names\[0\] must not be empty/);
    expect(ownerRuleProblem({ tool: 'x', persistent: true, paths: ['{a,b}'] }, 'o')).toMatch(/^o\.paths\[0\] is not a valid glob/);
    expect(ownerRuleProblem({ tool: 'x', persistent: true, names: ['a'], colour: 1 }, 'o')).toMatch(/^o\.colour is not a known key/);
    expect(ownerRuleProblem([], 'o')).toBe('o must be an object');
  });
});
