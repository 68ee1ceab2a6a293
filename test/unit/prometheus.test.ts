// The Prometheus renderer on hand-made documents: grouping, once-per-object memory,
// escaping, and what an empty snapshot looks like. The real parsers check its output in
// test/cli/export.test.ts; here only exact text is compared.
import { describe, expect, it } from 'vitest';
import { escapeHelp, escapeLabelValue, formatValue, groupPins, renderPrometheus } from '../../src/report/prometheus.js';
import type { Pin, Status } from '../../src/model.js';
import { doc, map } from './fixtures.js';

function pin(path: string, status: Status, object: Pin['object'], over: Partial<Pin> = {}): Pin {
  return {
    instance: '0:39', path, mountPaths: [{ mntNs: 1, path: `/sys/fs/bpf${path}` }], inode: 1, createdAt: '2026-11-24T10:00:00.000Z',
    uid: 0, gid: 0, mode: '0600', object, holders: [], usedBy: [], status, reasons: [],
    owner: { tool: null, persistent: false, pathPid: null, pathPidAlive: null }, creator: null, ...over,
  };
}

const sample = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

describe('prometheus renderer', () => {
  it('escapes label values and help text as the text format defines', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(escapeHelp('a\\b"c\nd')).toBe('a\\\\b"c\\nd');
    expect(formatValue(1.5)).toBe('1.5');
    expect(formatValue(NaN)).toBe('NaN');
    expect(formatValue(Infinity)).toBe('+Inf');
  });

  it('groups by status, owner and instance; an object pinned twice counts its memory once', () => {
    const m = map(7, 'twice', 4096);
    const otel = { tool: 'otel-go-instrumentation', persistent: false, pathPid: 12, pathPidAlive: false };
    const pins = [
      pin('/12/a', 'leaked', m, { owner: otel }),
      pin('/12/b', 'leaked', m, { owner: otel }),
      pin('/x', 'orphaned', map(8, 'x', 100)),
      pin('/y', 'orphaned', map(9, 'y', 200), { instance: '0:40' }),
      pin('/z', 'unreadable', null),
    ];
    const groups = groupPins(pins);
    expect(groups.map((g) => [g.status, g.owner, g.instance, g.pins.length])).toEqual([
      ['orphaned', 'unknown', '0:39', 1],
      ['orphaned', 'unknown', '0:40', 1],
      ['leaked', 'otel-go-instrumentation', '0:39', 2],
      ['unreadable', 'unknown', '0:39', 1],
    ]);
    const text = renderPrometheus(doc(pins), { version: '9.9.9' });
    expect(sample(text, 'pinleak_memlock_bytes')).toContain(
      'pinleak_memlock_bytes{status="leaked",owner="otel-go-instrumentation",bpffs_instance="0:39"} 4096');
    expect(sample(text, 'pinleak_pins')).toContain(
      'pinleak_pins{status="leaked",owner="otel-go-instrumentation",bpffs_instance="0:39"} 2');
    expect(sample(text, 'pinleak_leaks')).toEqual(['pinleak_leaks 4']);
    expect(sample(text, 'pinleak_leaked_bytes')).toEqual(['pinleak_leaked_bytes 4396']);
    expect(text).not.toContain('/12/a');
  });

  it('an empty snapshot still has every HELP, TYPE and scalar, and no timestamps', () => {
    const text = renderPrometheus(doc([], { hostname: 'ho"st\\1', kernel: '6.1\n', durationMs: 1500 }), { version: '1.0.0' });
    expect(text.endsWith('\n')).toBe(true);
    expect(sample(text, 'pinleak_pins')).toEqual([]);
    expect(text).toContain('# TYPE pinleak_pins gauge');
    expect(sample(text, 'pinleak_info')).toEqual(['pinleak_info{version="1.0.0",kernel="6.1\\n",hostname="ho\\"st\\\\1"} 1']);
    expect(sample(text, 'pinleak_snapshot_timestamp_seconds')).toEqual([`pinleak_snapshot_timestamp_seconds ${Date.parse('2026-11-24T10:00:00.000Z') / 1000}`]);
    expect(sample(text, 'pinleak_last_success_timestamp_seconds')).toEqual([`pinleak_last_success_timestamp_seconds ${Date.parse('2026-11-24T10:00:00.000Z') / 1000 + 1.5}`]);
    expect(sample(text, 'pinleak_snapshot_duration_seconds')).toEqual(['pinleak_snapshot_duration_seconds 1.5']);
    const names = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1]);
    expect(names).toHaveLength(15);
    expect(sample(text, 'pinleak_scan_partial')).toEqual(['pinleak_scan_partial 0']);
    const blind = renderPrometheus(doc([], { partial: true, partialReasons: ['no processes are visible'] }), { version: '1.0.0' });
    expect(sample(blind, 'pinleak_scan_partial')).toEqual(['pinleak_scan_partial 1']);
    for (const n of names) expect(text).toMatch(new RegExp(`^# HELP ${n} \\S`, 'm'));
  });

  it('pinleak watch adds whether its recorder runs and the pins it dropped; export does not', () => {
    expect(sample(renderPrometheus(doc([]), { version: '1.0.0' }), 'pinleak_watch_recording')).toEqual([]);
    const text = renderPrometheus(doc([]), { version: '1.0.0', watch: { recording: true, droppedPins: 2 } });
    expect(sample(text, 'pinleak_watch_recording')).toEqual(['pinleak_watch_recording 1']);
    expect(sample(text, 'pinleak_watch_dropped_pins')).toEqual(['pinleak_watch_dropped_pins 2']);
    expect(text).toContain('# TYPE pinleak_watch_dropped_pins gauge');
    const scanning = renderPrometheus(doc([]), { version: '1.0.0', watch: { recording: false, droppedPins: 0 } });
    expect(sample(scanning, 'pinleak_watch_recording')).toEqual(['pinleak_watch_recording 0']);
  });

  it('stale persistent pins: pins and bytes by owner, each object once, never counted as leaks', () => {
    const iproute2 = { tool: 'iproute2', persistent: true, pathPid: null, pathPidAlive: null };
    const stale = { since: '2026-11-24T09:00:00.000Z', sinceSnapshot: 3 };
    const m = map(7, 'jmp_map', 4096);
    const pins = [
      pin('/tc/globals/a', 'persistent', m, { owner: iproute2, stale }),
      pin('/tc/globals/b', 'persistent', m, { owner: iproute2, stale }),
      pin('/tc/globals/c', 'persistent', map(8, 'c', 100), { owner: iproute2, stale }),
      pin('/tc/globals/live', 'in-use', map(9, 'live', 5000), { owner: iproute2, stale: null }),
      pin('/cilium/x', 'persistent', map(10, 'x', 10), { owner: { ...iproute2, tool: 'cilium' }, stale }),
    ];
    const text = renderPrometheus(doc(pins), { version: '9.9.9' });
    expect(sample(text, 'pinleak_stale_bytes')).toEqual(['pinleak_stale_bytes{owner="cilium"} 10', 'pinleak_stale_bytes{owner="iproute2"} 4196']);
    expect(sample(text, 'pinleak_stale_pins')).toEqual(['pinleak_stale_pins{owner="cilium"} 1', 'pinleak_stale_pins{owner="iproute2"} 3']);
    expect(sample(text, 'pinleak_leaks')).toEqual(['pinleak_leaks 0']);
  });
});
