// Opening a pinleak HTML page in Debian's headless Chromium with the network off, as the
// report tests and scripts/report-screenshot.mjs do. Driven by playwright-core (no
// browser download: the executable is the distribution's). Every console message of
// type error or warning, every page error and every request that is not the file itself
// is recorded: a self-contained page makes none.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const INSTALL_CHROMIUM = 'apt-get install -y chromium';
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

/**
 * Opens `file` and waits until its charts report they are drawn (body[data-render-ms]);
 * `waitForCharts: false` for pages without charts. The profile is a new empty directory,
 * removed by close().
 */
export async function openPage(file, { colorScheme = 'light', width = 1280, height = 1100, waitForCharts = true } = {}) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: ${INSTALL_CHROMIUM}`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-chromium-'));
  let context;
  try {
    // headless: true passes --headless; the profile is --user-data-dir
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, offline: true, colorScheme, viewport: { width, height }, args: FLAGS,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    const url = pathToFileURL(file).href;
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      if (r.url() !== url) problems.push(`request: ${r.url()}`);
    });
    const started = performance.now();
    await page.goto(url, { waitUntil: 'load' });
    if (waitForCharts) await page.waitForFunction(() => document.body.dataset.renderMs !== undefined, null, { timeout: 60_000 });
    const loadMs = Math.round(performance.now() - started);
    return { page, problems, loadMs, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * For each chart of the report: how many canvas pixels have one of its series' colours
 * (within a small tolerance, mostly opaque). Axes and grid are other colours, so a chart
 * whose series drew nothing counts 0.
 */
export function seriesPixels(page) {
  return page.evaluate(() => {
    const out = {};
    for (const [id, { plot, colors }] of Object.entries(window.pinleakCharts)) {
      const canvas = plot.ctx.canvas;
      const px = plot.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const rgb = colors.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
      let n = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] < 200) continue;
        if (rgb.some(([r, g, b]) => Math.abs(px[i] - r) < 24 && Math.abs(px[i + 1] - g) < 24 && Math.abs(px[i + 2] - b) < 24)) n++;
      }
      out[id] = n;
    }
    return out;
  });
}
