// pinleak export prometheus: the metrics of the latest stored snapshot, checked with real
// Prometheus text-format parsers (Debian's promtool and python3-prometheus-client), never
// with a parser of our own. Neither may be missing: a missing parser fails the test (CI
// installs both), it is never a reason to skip.
//
// The database comes from real scans of a real world: two bpffs instances, a held pin, a
// leaked pin (its creator was seen holding it, then exited) whose path and owner carry a
// double quote, a backslash and a newline, and many orphaned pins that must still make
// one series.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorld, type World, type Mount } from '../world/world.js';
import { CLI, pinleak, pinleakJson, tempDb } from '../helpers.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';

/** The one-line failure when a parser is missing: the README's test command installs both. */
const missing = (what: string) => `${what} is missing: run the tests with \`bash .ci/run\` (it installs prometheus and python3-prometheus-client)`;
// Debian's python, where python3-prometheus-client installs (a pyenv python3 on PATH would not see it)
const PYTHON = '/usr/bin/python3';

// An owner name from the user's config file: the label value must survive escaping.
const ODD_OWNER = 'odd "tool" \\ with\nnewline';
const ORPHANS = 30;

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp: number | null;
}
interface ParsedFamily {
  name: string;
  type: string;
  documentation: string;
  samples: ParsedSample[];
}

const PARSE_PY = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "documentation": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value,
                             "timestamp": None if s.timestamp is None else float(s.timestamp)} for s in f.samples]})
print(json.dumps(out))
`;

function promtoolPresent(): boolean {
  return spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
}
function pythonClientPresent(): boolean {
  return spawnSync(PYTHON, ['-c', 'import prometheus_client.parser'], { encoding: 'utf8' }).status === 0;
}

/** promtool check metrics: parse errors exit 1, lint problems (no HELP, bad names...) exit 3. */
function promtoolCheck(text: string): { code: number | null; output: string } {
  if (!promtoolPresent()) throw new Error(missing('promtool'));
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** The official Python client's text-format parser. */
function parse(text: string): ParsedFamily[] {
  if (!pythonClientPresent()) throw new Error(missing(`python3-prometheus-client (${PYTHON} cannot import prometheus_client)`));
  const r = spawnSync(PYTHON, ['-c', PARSE_PY], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`prometheus_client could not parse the export: ${r.stderr}`);
  return JSON.parse(r.stdout) as ParsedFamily[];
}

let world: World;
let db: ReturnType<typeof tempDb>;
let configFile: string;
let main: Mount;
let second: Mount;
let leakPath: string; // relative to main's root
let text: string;
let families: ParsedFamily[];
let doc: SnapshotDoc;

const family = (name: string): ParsedFamily => {
  const f = families.find((x) => x.name === name);
  if (!f) throw new Error(`no metric ${name} in:\n${text}`);
  return f;
};
const scalar = (name: string): number => {
  const f = family(name);
  expect(f.samples, name).toHaveLength(1);
  expect(f.samples[0]!.labels, name).toEqual({});
  return f.samples[0]!.value;
};
const ownerOf = (p: Pin) => p.owner?.tool || 'unknown';
const key = (status: string, owner: string, instance: string) => JSON.stringify([status, owner, instance]);

/** What the groups must be, computed from `pins --json` independently of the exporter. */
function expectedGroups(pins: Pin[]): Map<string, { count: number; bytes: number }> {
  const out = new Map<string, { count: number; bytes: number; seen: Set<string> }>();
  for (const p of pins) {
    const k = key(p.status, ownerOf(p), p.instance);
    let g = out.get(k);
    if (!g) out.set(k, (g = { count: 0, bytes: 0, seen: new Set() }));
    g.count++;
    if (p.object && !g.seen.has(`${p.object.kind}:${p.object.id}`)) {
      g.seen.add(`${p.object.kind}:${p.object.id}`);
      g.bytes += p.object.memlockBytes;
    }
  }
  return new Map([...out].map(([k, v]) => [k, { count: v.count, bytes: v.bytes }]));
}

function exportText(): string {
  const r = pinleak(['export', 'prometheus'], { db: db.db });
  if (r.code !== 0) throw new Error(`export exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  world = createWorld();
  db = tempDb();
  try {
    configFile = path.join(db.dir, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify({ owners: [{ tool: ODD_OWNER, persistent: false, paths: ['odd/**'] }] }));
    main = await world.mountBpffs('main');
    second = await world.mountBpffs('second');

    const holder = await world.spawnAgent();
    const held = await holder.call({ op: 'map', name: 'held_map' });
    await holder.call({ op: 'pin', fd: held.fd!, path: path.join(main.path, 'app', 'kept') });

    // many orphans: nothing holds them, no scan saw who made them
    for (let i = 0; i < ORPHANS; i++) {
      const m = await holder.call({ op: 'map', name: `orphan_${i}` });
      await holder.call({ op: 'pin', fd: m.fd!, path: path.join(main.path, 'orphans', `o${i}`) });
      await holder.call({ op: 'close', fd: m.fd! });
    }
    const o2 = await holder.call({ op: 'map', name: 'orphan_second' });
    await holder.call({ op: 'pin', fd: o2.fd!, path: path.join(second.path, 'stray') });
    await holder.call({ op: 'close', fd: o2.fd! });

    // a leak: seen held by its creator in one scan, creator gone by the next
    const creator = await world.spawnAgent();
    const leaked = await creator.call({ op: 'map', name: 'leak_map', maxEntries: 1024 });
    leakPath = 'odd/we"ird\\name\nwith newline';
    await creator.call({ op: 'pin', fd: leaked.fd!, path: path.join(main.path, leakPath) });

    const s1 = pinleak(['scan', '--quiet', '--config', configFile], { db: db.db });
    if (s1.code !== 0) throw new Error(`scan 1 exited ${s1.code}: ${s1.stderr}`);
    await creator.exit();
    const s2 = pinleak(['scan', '--quiet', '--config', configFile], { db: db.db });
    if (s2.code !== 0) throw new Error(`scan 2 exited ${s2.code}: ${s2.stderr}`);

    doc = pinleakJson(['pins', 'latest'], { db: db.db });
    text = exportText();
    families = parse(text);
  } catch (e) {
    await world.cleanup();
    db.remove();
    throw e;
  }
}, 120_000);

afterAll(async () => {
  await world?.cleanup();
  db?.remove();
});

describe('export prometheus', () => {
  it('has both real parsers available (CI installs them; a missing one is a failure, not a skip)', () => {
    expect(promtoolPresent(), missing('promtool')).toBe(true);
    expect(pythonClientPresent(), missing(`python3-prometheus-client (${PYTHON} cannot import prometheus_client)`)).toBe(true);
  });

  it('the world is what the other tests rely on', () => {
    const leak = doc.pins.find((p) => p.instance === main.dev && p.path === '/' + leakPath);
    expect(leak?.status).toBe('leaked');
    expect(leak?.owner.tool).toBe(ODD_OWNER);
    expect(doc.pins.filter((p) => p.instance === main.dev && p.path.startsWith('/orphans/') && p.status === 'orphaned'))
      .toHaveLength(ORPHANS);
    expect(doc.pins.find((p) => p.instance === main.dev && p.path === '/app/kept')?.status).toBe('held');
  });

  it('passes promtool check metrics with no parse error and no lint problem', () => {
    const r = promtoolCheck(text);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('promtool does reject broken input (the check is not a no-op)', () => {
    expect(promtoolCheck('pinleak_x{a="\\q"} 1\n').code).toBe(1);
    expect(promtoolCheck('# TYPE pinleak_x gauge\npinleak_x 1\n').code).toBe(3);
  });

  it('every metric has exactly one HELP and one TYPE line before its samples, is a gauge, has no timestamps', () => {
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.split('\n').filter(Boolean);
    const names = families.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const f of families) {
      expect(f.type, f.name).toBe('gauge');
      expect(f.documentation.length, f.name).toBeGreaterThan(10);
      expect(lines.filter((l) => l.startsWith(`# HELP ${f.name} `)), f.name).toHaveLength(1);
      expect(lines.filter((l) => l === `# TYPE ${f.name} gauge`), f.name).toHaveLength(1);
      const help = lines.findIndex((l) => l.startsWith(`# HELP ${f.name} `));
      const type = lines.indexOf(`# TYPE ${f.name} gauge`);
      const first = lines.findIndex((l) => l.startsWith(`${f.name}{`) || l.startsWith(`${f.name} `));
      expect(help, f.name).toBeLessThan(type);
      if (first >= 0) expect(type, f.name).toBeLessThan(first);
      for (const s of f.samples) expect(s.timestamp, `${f.name} has a timestamp`).toBeNull();
    }
    // every sample line, as text, has no timestamp either
    for (const l of lines.filter((x) => !x.startsWith('#'))) expect(l).toMatch(/^[a-z_]+(\{.*\})? [0-9.e+-]+$/);
    for (const n of [
      'pinleak_info', 'pinleak_pins', 'pinleak_memlock_bytes', 'pinleak_leaks', 'pinleak_leaked_bytes', 'pinleak_namespaces',
      'pinleak_instances', 'pinleak_scan_errors', 'pinleak_scan_partial', 'pinleak_snapshot_id', 'pinleak_snapshot_duration_seconds',
      'pinleak_snapshot_timestamp_seconds', 'pinleak_last_success_timestamp_seconds',
    ]) expect(names).toContain(n);
  });

  it('no series is repeated', () => {
    const seen = new Set<string>();
    for (const f of families) {
      for (const s of f.samples) {
        const id = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
        expect(seen.has(id), id).toBe(false);
        seen.add(id);
      }
    }
  });

  it('has low-cardinality labels only: no pin path, mount point, object id or pid; many pins make one series', () => {
    const allowed = new Set(['status', 'owner', 'bpffs_instance', 'version', 'kernel', 'hostname']);
    // this world's pins and mounts (other tests' worlds on the same host may name a pin "held")
    const ours = (dev: string) => dev === main.dev || dev === second.dev;
    const pinPaths = doc.pins.filter((p) => ours(p.instance))
      .flatMap((p) => [p.path, p.path.replace(/^\//, ''), ...p.mountPaths.map((m) => m.path)]);
    const mountPoints = doc.instances.filter((i) => ours(i.dev)).flatMap((i) => i.mounts.map((m) => m.mountPoint));
    expect(pinPaths.length).toBeGreaterThan(ORPHANS);
    for (const f of families) {
      for (const s of f.samples) {
        for (const [k, v] of Object.entries(s.labels)) {
          expect(allowed.has(k), `label ${k} on ${f.name}`).toBe(true);
          expect(pinPaths, `${f.name}{${k}} carries a pin path`).not.toContain(v);
          expect(mountPoints, `${f.name}{${k}} carries a mount point`).not.toContain(v);
          expect(v).not.toContain(world.dir);
        }
      }
    }
    expect(text).not.toContain('orphans/o');
    expect(text).not.toContain('we\\"ird');
    // ORPHANS pins in main with the same status and owner: one series
    const orphanSeries = family('pinleak_pins').samples
      .filter((s) => s.labels.bpffs_instance === main.dev && s.labels.status === 'orphaned');
    expect(orphanSeries).toHaveLength(1);
    expect(orphanSeries[0]!.value).toBe(ORPHANS);
    // series: one per (status, owner, instance) that occurs, never one per pin
    const groups = expectedGroups(doc.pins);
    expect(family('pinleak_pins').samples).toHaveLength(groups.size);
    expect(family('pinleak_memlock_bytes').samples).toHaveLength(groups.size);
    expect(groups.size).toBeLessThan(doc.pins.length);
  });

  it('escapes label values: an owner with a quote, a backslash and a newline reads back exactly', () => {
    const s = family('pinleak_pins').samples.find((x) => x.labels.owner === ODD_OWNER);
    expect(s?.labels).toEqual({ status: 'leaked', owner: ODD_OWNER, bpffs_instance: main.dev });
    expect(s?.value).toBe(1);
    expect(text).toContain('owner="odd \\"tool\\" \\\\ with\\nnewline"');
  });

  it('agrees with pins --json and snapshots --json', () => {
    const groups = expectedGroups(doc.pins);
    for (const s of family('pinleak_pins').samples) {
      const g = groups.get(key(s.labels.status!, s.labels.owner!, s.labels.bpffs_instance!));
      expect(g, JSON.stringify(s.labels)).toBeDefined();
      expect(s.value, JSON.stringify(s.labels)).toBe(g!.count);
    }
    for (const s of family('pinleak_memlock_bytes').samples) {
      const g = groups.get(key(s.labels.status!, s.labels.owner!, s.labels.bpffs_instance!));
      expect(s.value, JSON.stringify(s.labels)).toBe(g!.bytes);
    }
    const sum = family('pinleak_pins').samples.reduce((a, s) => a + s.value, 0);
    expect(sum).toBe(doc.summary.pins);
    for (const [status, n] of Object.entries(doc.summary.byStatus)) {
      const got = family('pinleak_pins').samples.filter((s) => s.labels.status === status).reduce((a, s) => a + s.value, 0);
      expect(got, status).toBe(n);
    }
    expect(scalar('pinleak_leaks')).toBe(doc.summary.byStatus.orphaned + doc.summary.byStatus.leaked);
    expect(scalar('pinleak_leaks')).toBeGreaterThanOrEqual(ORPHANS + 2);
    const list = pinleakJson<{ snapshots: { id: number; leaks: number; leakedBytes: number }[] }>(['snapshots'], { db: db.db });
    const latest = list.snapshots.at(-1)!;
    expect(scalar('pinleak_leaks')).toBe(latest.leaks);
    // snapshots' leakedBytes is the summary's memlockBytes.leaked; the metric covers every leak (orphaned too)
    expect(latest.leakedBytes).toBe(doc.summary.memlockBytes.leaked);
    const leakObjects = new Map(doc.pins.filter((p) => p.status === 'orphaned' || p.status === 'leaked')
      .map((p) => [`${p.object!.kind}:${p.object!.id}`, p.object!.memlockBytes]));
    expect(scalar('pinleak_leaked_bytes')).toBe([...leakObjects.values()].reduce((a, b) => a + b, 0));
    expect(scalar('pinleak_leaked_bytes')).toBeGreaterThan(latest.leakedBytes);
    expect(scalar('pinleak_namespaces')).toBe(doc.summary.namespaces);
    expect(scalar('pinleak_instances')).toBe(doc.summary.instances);
    expect(scalar('pinleak_instances')).toBeGreaterThanOrEqual(2);
    expect(scalar('pinleak_scan_errors')).toBe(doc.errors.length);
    expect(scalar('pinleak_snapshot_id')).toBe(doc.snapshot.id);
    expect(scalar('pinleak_snapshot_id')).toBe(latest.id);
    expect(scalar('pinleak_snapshot_duration_seconds')).toBeCloseTo(doc.snapshot.durationMs / 1000, 6);
    const taken = Date.parse(doc.snapshot.takenAt) / 1000;
    expect(scalar('pinleak_snapshot_timestamp_seconds')).toBeCloseTo(taken, 3);
    const last = scalar('pinleak_last_success_timestamp_seconds');
    expect(last).toBeGreaterThanOrEqual(taken);
    expect(last).toBeLessThanOrEqual(taken + doc.snapshot.durationMs / 1000 + 0.001);
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(600);
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(family('pinleak_info').samples).toEqual([{
      name: 'pinleak_info', labels: { version: pkg.version, kernel: doc.snapshot.kernel, hostname: doc.snapshot.hostname },
      value: 1, timestamp: null,
    }]);
  });

  it('does not scan: the database keeps its snapshots, and the latest is what is exported', () => {
    const before = pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length;
    expect(exportText()).toBe(text);
    expect(pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length).toBe(before);
  });

  it('--output replaces the file atomically: a new inode, the old one untouched, no temporary file left', () => {
    const dir = fs.mkdtempSync(path.join(db.dir, 'textfile-'));
    const out = path.join(dir, 'pinleak.prom');
    fs.writeFileSync(out, 'stale\n');
    const oldIno = fs.statSync(out).ino;
    const oldFd = fs.openSync(out, 'r');
    try {
      const r = pinleak(['export', 'prometheus', '--output', out], { db: db.db });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^wrote \d+ samples of snapshot \d+ to /);
      expect(fs.readdirSync(dir)).toEqual(['pinleak.prom']);
      expect(fs.readFileSync(out, 'utf8')).toBe(text);
      expect(fs.statSync(out).ino).not.toBe(oldIno);
      // a reader that had the old file open still sees the whole old content: never truncated in place
      expect(fs.readFileSync(oldFd, 'utf8')).toBe('stale\n');
      // readable by node_exporter, which does not run as root
      expect(fs.statSync(out).mode & 0o044).toBe(0o044);
      expect(promtoolCheck(fs.readFileSync(out, 'utf8')).code).toBe(0);
    } finally {
      fs.closeSync(oldFd);
    }

    const q = pinleak(['export', 'prometheus', '--output', out, '--quiet'], { db: db.db });
    expect(q.code).toBe(0);
    expect(q.stdout).toBe('');
    const j = pinleakJson<{ output: string; samples: number; snapshot: { id: number } }>(
      ['export', 'prometheus', '--output', out], { db: db.db });
    expect(j.output).toBe(out);
    expect(j.snapshot.id).toBe(doc.snapshot.id);
    expect(j.samples).toBe(families.reduce((a, f) => a + f.samples.length, 0));
    expect(fs.readdirSync(dir)).toEqual(['pinleak.prom']);
  });

  it('--output flushes the temporary file to disk before the rename (strace as the witness)', () => {
    const dir = fs.mkdtempSync(path.join(db.dir, 'fsync-'));
    const out = path.join(dir, 'pinleak.prom');
    const trace = path.join(db.dir, 'export.strace');
    const r = spawnSync('strace', ['-f', '-qq', '-o', trace, '-e', 'trace=openat,fsync,fdatasync,rename,renameat,renameat2',
      process.execPath, CLI, '--db', db.db, 'export', 'prometheus', '--output', out, '--quiet'], { encoding: 'utf8' });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error('strace is missing: install it (apt-get install strace)');
    expect(r.status, r.stderr).toBe(0);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const opened = lines.findIndex((l) => /openat\(.*\.pinleak\.prom\.[0-9a-f]+\.tmp".*O_EXCL.*= \d+$/.test(l));
    expect(opened, 'the temporary file is opened').toBeGreaterThanOrEqual(0);
    const fd = /= (\d+)$/.exec(lines[opened]!)![1];
    const synced = lines.findIndex((l, i) => i > opened && new RegExp(`f(data)?sync\\(${fd}\\) += 0`).test(l));
    const renamed = lines.findIndex((l) => /rename(at2?)?\(.*\.tmp".*pinleak\.prom".*= 0$/.test(l));
    expect(synced, 'fsync of the temporary file').toBeGreaterThan(opened);
    expect(renamed, 'the rename').toBeGreaterThan(synced);
  });

  it('a directory that does not exist is one error line, exit 2, and nothing is created', () => {
    const out = path.join(db.dir, 'no-such-dir', 'pinleak.prom');
    const r = pinleak(['export', 'prometheus', '--output', out], { db: db.db });
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^pinleak: cannot write .*no-such-dir/);
    expect(fs.existsSync(path.dirname(out))).toBe(false);
  });

  it('an unknown format, a missing database and --json without --output are one error line, exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['export', 'openmetrics', '--db', db.db], /unknown format.*prometheus/],
      [['export', 'prometheus', '--db', path.join(db.dir, 'none.db')], /pinleak scan/],
      [['export', 'prometheus', '--json', '--db', db.db], /--output/],
    ];
    for (const [args, pattern] of cases) {
      const r = pinleak(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^pinleak: /);
      expect(lines[0]).toMatch(pattern);
    }
    expect(fs.existsSync(path.join(db.dir, 'none.db'))).toBe(false);
  });

  it('the alerting rules in deploy/prometheus are valid, pass their promtool tests, and use only exported metrics', () => {
    const dir = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
    if (!promtoolPresent()) throw new Error(missing('promtool'));
    const check = spawnSync('promtool', ['check', 'rules', 'pinleak-rules.yml'], { cwd: dir, encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    const test = spawnSync('promtool', ['test', 'rules', 'pinleak-rules.test.yml'], { cwd: dir, encoding: 'utf8' });
    expect(test.status, `${test.stdout}${test.stderr}`).toBe(0);
    const used = new Set(fs.readFileSync(path.join(dir, 'pinleak-rules.yml'), 'utf8').match(/\bpinleak_[a-z_]+/g));
    expect(used.size).toBeGreaterThan(3);
    for (const name of used) expect(families.map((f) => f.name), name).toContain(name);
  });

  it('follows the newest snapshot after another scan', () => {
    const r = pinleak(['scan', '--quiet', '--config', configFile], { db: db.db });
    expect(r.code, r.stderr).toBe(0);
    const next = parse(exportText());
    const id = next.find((f) => f.name === 'pinleak_snapshot_id')!.samples[0]!.value;
    expect(id).toBe(doc.snapshot.id! + 1);
    const ts = next.find((f) => f.name === 'pinleak_last_success_timestamp_seconds')!.samples[0]!.value;
    expect(ts).toBeGreaterThan(scalar('pinleak_last_success_timestamp_seconds'));
  });
});
