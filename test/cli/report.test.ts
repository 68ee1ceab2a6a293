// pinleak report and gate --html, opened in a real browser (Debian's headless Chromium,
// network off): the page loads with no console error and no request, the charts drew, and
// what they show is what the store holds. The history comes from real scans of a real
// world, from the demo, and from a 10,000-snapshot history written through saveSnapshot.
// Also: the Grafana dashboard queries only metrics and labels a real export has.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { worldForFile } from '../world/for-file.js';
import { CLI, pinleak, pinleakJson, NODE_COMM } from '../helpers.js';
import type { SnapshotDoc } from '../../src/model.js';
import { openPage, seriesPixels } from '../../scripts/browser.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HISTORY = path.join(ROOT, 'scripts/report-history.mjs');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/pinleak.json');
const LEAK_PATH = 'app/<script>alert(1)</script>&leak';

let baselineId: number;
const t = worldForFile(async ({ world, db }) => {
  const bpffs = await world.mountBpffs('main');
  const holder = await world.spawnAgent();
  const held = await holder.call({ op: 'map', name: 'held_map' });
  await holder.call({ op: 'pin', fd: held.fd!, path: path.join(bpffs.path, 'kept') });
  const orphan = await holder.call({ op: 'map', name: 'orphan_map' });
  await holder.call({ op: 'pin', fd: orphan.fd!, path: path.join(bpffs.path, 'stray') });
  await holder.call({ op: 'close', fd: orphan.fd! });
  // a leak whose name would break a page that did not escape: seen held, then its creator exits
  const creator = await world.spawnAgent();
  const leaked = await creator.call({ op: 'map', name: 'leak_map', maxEntries: 4096 });
  await creator.call({ op: 'pin', fd: leaked.fd!, path: path.join(bpffs.path, LEAK_PATH) });
  const s1 = pinleakJson(['scan', '--label', 'before'], { db: db.db });
  baselineId = s1.snapshot.id!;
  await creator.exit();
  const s2 = pinleak(['scan', '--quiet'], { db: db.db });
  if (s2.code !== 0) throw new Error(`scan 2 exited ${s2.code}: ${s2.stderr}`);
});

const latest = (db: string) => pinleakJson<SnapshotDoc>(['pins', 'latest'], { db });

function report(db: string, out: string, extra: string[] = []): void {
  const r = pinleak(['report', '--output', out, ...extra], { db });
  expect(r.code, r.stderr).toBe(0);
}

/** The page's own data and what its charts hold. */
async function chartState(page: import('playwright-core').Page) {
  return page.evaluate(() => {
    const w = window as unknown as { pinleakCharts: Record<string, { plot: { data: number[][] } }> };
    const data = JSON.parse(document.getElementById('pinleak-data')!.textContent!).chart;
    const top = (id: string) => {
      const c = w.pinleakCharts[id];
      return c ? c.plot.data[c.plot.data.length - 1]!.at(-1) : null;
    };
    return { data, leakedTop: top('chart-leaked'), charts: Object.keys(w.pinleakCharts), bg: getComputedStyle(document.body).backgroundColor };
  });
}

describe('pinleak report', () => {
  it('opens in Chromium with no console error and no request, draws the charts, and its leaked line ends at the latest memlockBytes.leaked', async () => {
    const out = path.join(t.db.dir, 'report.html');
    report(t.db.db, out);
    const doc = latest(t.db.db);
    const leak = doc.pins.find((p) => p.path === '/' + LEAK_PATH);
    expect(leak?.status).toBe('leaked');
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toContain('<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;');
    expect(html).not.toMatch(/<script>alert|src="http|href="http/);
    expect(html).toContain('app/&lt;script&gt;alert(1)&lt;/script&gt;&amp;leak');

    const { page, problems, close } = await openPage(out);
    try {
      expect(problems).toEqual([]);
      const state = await chartState(page);
      expect(doc.summary.memlockBytes.leaked).toBeGreaterThan(0);
      expect(state.leakedTop).toBe(doc.summary.memlockBytes.leaked);
      expect(state.data.leakedTotal.at(-1)).toBe(doc.summary.memlockBytes.leaked);
      expect(state.data.x).toHaveLength(2);
      const pixels = await seriesPixels(page);
      expect(pixels['chart-leaked']).toBeGreaterThan(100);
      expect(pixels['chart-pins']).toBeGreaterThan(100);
      // the table shows the leak with its creator, read back as text (escaped, not markup)
      const row = await page.locator('tr', { hasText: '/' + LEAK_PATH }).first().innerText();
      expect(row).toContain('leaked');
      expect(row).toMatch(new RegExp(`\\d+ ${NODE_COMM} \\(exited\\)`));
      await page.screenshot({ path: path.join(t.db.dir, 'light.png') });
    } finally {
      await close();
    }
  });

  it('is readable on a dark screen: dark background, light text, charts drawn', async () => {
    const out = path.join(t.db.dir, 'report-dark.html');
    report(t.db.db, out);
    const { page, problems, close } = await openPage(out, { colorScheme: 'dark' });
    try {
      expect(problems).toEqual([]);
      const colors = await page.evaluate(() => [getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]);
      expect(colors).toEqual(['rgb(18, 18, 20)', 'rgb(232, 232, 236)']);
      expect((await seriesPixels(page))['chart-leaked']).toBeGreaterThan(100);
    } finally {
      await close();
    }
  });

  it('works on a database of one snapshot', async () => {
    const db = path.join(t.db.dir, 'one.db');
    const r = pinleak(['scan', '--quiet'], { db });
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(t.db.dir, 'one.html');
    report(db, out);
    const doc = latest(db);
    const { page, problems, close } = await openPage(out);
    try {
      expect(problems).toEqual([]);
      const state = await chartState(page);
      expect(state.data.x).toHaveLength(1);
      expect(state.leakedTop ?? 0).toBe(doc.summary.memlockBytes.leaked);
      expect((await seriesPixels(page))['chart-pins']).toBeGreaterThan(20);
      expect(await page.locator('body').innerText()).toContain('Only one snapshot: nothing to compare yet.');
    } finally {
      await close();
    }
  });

  it('--since leaves older snapshots out; errors are one line, exit 2', () => {
    const out = path.join(t.db.dir, 'since.html');
    const j = pinleakJson<{ snapshots: number }>(['report', '--since', '1h', '--output', out], { db: t.db.db });
    expect(j.snapshots).toBe(2);
    for (const [args, msg] of [
      [['report', '--since', 'yesterday'], /^pinleak: bad duration "yesterday"/],
      [['report', '--json'], /^pinleak: --json: report prints HTML on stdout/],
      [['report', '--output', t.db.db], /^pinleak: .* is the pinleak database/],
    ] as const) {
      const r = pinleak([...args], { db: t.db.db });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const none = pinleak(['report'], { db: path.join(t.db.dir, 'absent.db') });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^pinleak: no database at /);
  });

  it('gate --html writes the finding: new leaks, baseline vs now, what changed', async () => {
    const out = path.join(t.db.dir, 'gate.html');
    const junit = path.join(t.db.dir, 'junit.xml');
    const r = pinleak(['gate', '--baseline', String(baselineId), '--no-store', '--junit', junit, '--html', out, '--allow-partial'], { db: t.db.db });
    expect(r.code, r.stderr).toBe(1);
    expect(fs.existsSync(junit)).toBe(true);
    const { page, problems, close } = await openPage(out, { waitForCharts: false });
    try {
      expect(problems).toEqual([]);
      const text = await page.locator('body').innerText();
      expect(text).toContain('pinleak gate: failed');
      expect(text).toContain(`since snapshot ${baselineId} "before"`);
      expect(await page.locator('tr', { hasText: '/' + LEAK_PATH }).count()).toBeGreaterThan(0);
      expect(text).toContain('Baseline and now');
    } finally {
      await close();
    }
  });

  it('renders the demo world kept with demo --keep-db: the leak goes up, and down after clean', async () => {
    const db = path.join(t.db.dir, 'demo.db');
    const d = spawnSync(process.execPath, [CLI, 'demo', '--keep-db', db], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
    expect(d.status, d.stderr).toBe(0);
    const out = path.join(t.db.dir, 'demo.html');
    report(db, out);
    const { page, problems, close } = await openPage(out);
    try {
      expect(problems).toEqual([]);
      const state = await chartState(page);
      const otel = state.data.leaked.find((o: { owner: string }) => o.owner === 'otel-go-instrumentation');
      expect(otel.values[0]).toBe(0);
      expect(Math.max(...otel.values)).toBeGreaterThan(0);
      expect(otel.values.at(-1)).toBe(0);
    } finally {
      await close();
    }
  });

  it('a 10,000-snapshot history: reports in seconds, stays small, draws every point and marks the partial scans', async () => {
    const db = path.join(t.db.dir, 'long.db');
    const g = spawnSync(process.execPath, [HISTORY, '--db', db, '--snapshots', '10000', '--pins', '5'], { encoding: 'utf8', timeout: 300_000 });
    expect(g.status, g.stderr).toBe(0);
    const out = path.join(t.db.dir, 'long.html');
    const t0 = performance.now();
    report(db, out);
    const reportMs = Math.round(performance.now() - t0);
    const size = fs.statSync(out).size;
    const doc = latest(db);
    const { page, problems, loadMs, close } = await openPage(out);
    try {
      expect(problems).toEqual([]);
      const state = await chartState(page);
      const renderMs = Number(await page.evaluate(() => document.body.dataset.renderMs));
      console.log(`10,000 snapshots: history ${g.stdout.trim()}; report ${reportMs} ms, ${size} bytes; browser load ${loadMs} ms, charts ${renderMs} ms`);
      expect(state.data.x).toHaveLength(10000);
      expect(state.data.partial).toHaveLength(19);
      expect(state.leakedTop).toBe(doc.summary.memlockBytes.leaked);
      // owners beyond the chart's limit share one series, and still add up to the total
      expect(state.data.leaked.length).toBeLessThanOrEqual(8);
      state.data.leakedTotal.forEach((total: number, i: number) => {
        expect(state.data.leaked.reduce((s: number, o: { values: number[] }) => s + o.values[i]!, 0)).toBe(total);
      });
      expect((await seriesPixels(page))['chart-leaked']).toBeGreaterThan(1000);
      // bounds far above what this machine measures (see the commit), to catch a blow-up
      expect(size).toBeLessThan(4 * 1024 * 1024);
      expect(reportMs).toBeLessThan(20_000);
      expect(loadMs).toBeLessThan(20_000);
    } finally {
      await close();
    }
  }, 600_000);
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  const queries: string[] = [
    ...dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((q) => q.expr)),
    ...dashboard.templating.list.map((v: { query: { query: string } }) => v.query.query),
  ];

  it('is importable as is: a Prometheus datasource input DS_PROMETHEUS used by every panel and query', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      for (const q of p.targets) expect(q.datasource).toEqual(p.datasource);
      expect(p.gridPos).toEqual(expect.objectContaining({ w: expect.any(Number), h: expect.any(Number) }));
    }
    for (const title of ['Leaked and orphaned memory by owner', 'Leaked and orphaned memory by node', 'New leaks (last hour)', 'Last successful scan age', 'Partial scans']) {
      expect(dashboard.panels.map((p: { title: string }) => p.title)).toContain(title);
    }
  });

  it('queries only metric and label names that a real `pinleak export prometheus` writes, and promtool parses every query', () => {
    const r = pinleak(['export', 'prometheus'], { db: t.db.db });
    expect(r.code, r.stderr).toBe(0);
    const samples = r.stdout.split('\n').filter((l) => l && !l.startsWith('#'));
    const metrics = new Set(samples.map((l) => /^[a-zA-Z_:][\w:]*/.exec(l)![0]));
    const labels = new Set(samples.flatMap((l) => [...(/\{(.*)\}/.exec(l)?.[1] ?? '').matchAll(/(\w+)="/g)].map((m) => m[1]!)));
    // set by Prometheus on every scraped series: the node_exporter target
    const scrapeLabels = new Set(['instance', 'job']);
    const used = { metrics: new Set<string>(), labels: new Set<string>() };
    for (const q of queries) {
      for (const m of q.matchAll(/\bpinleak_\w+/g)) used.metrics.add(m[0]);
      for (const m of q.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) used.labels.add(l[1]!);
      for (const m of q.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',')) used.labels.add(l.trim());
      for (const m of q.matchAll(/label_values\(\s*\w+\s*,\s*(\w+)\s*\)/g)) used.labels.add(m[1]!);
    }
    expect(used.metrics.size).toBeGreaterThan(4);
    for (const m of used.metrics) expect(metrics, `metric ${m}`).toContain(m);
    for (const l of used.labels) expect(l, `label ${l}`).toSatisfy((x: string) => labels.has(x) || scrapeLabels.has(x));
    for (const l of ['status', 'owner', 'bpffs_instance']) expect(used.labels).toContain(l);

    // promtool parses PromQL in rule files: one recording rule per query (Grafana's variables filled in)
    const rules = ['groups:', '  - name: dashboard', '    rules:', ...queries.filter((q) => !q.startsWith('label_values')).flatMap((q, i) => [
      `      - record: pinleak_dashboard_query_${i}`, `        expr: ${JSON.stringify(q.replace(/\$node/g, '.*'))}`,
    ])].join('\n');
    const file = path.join(t.db.dir, 'dashboard-rules.yml');
    fs.writeFileSync(file, rules + '\n');
    const check = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    expect(`${check.stdout}${check.stderr}`, 'promtool check rules').toContain('SUCCESS');
    expect(check.status).toBe(0);
  });
});
