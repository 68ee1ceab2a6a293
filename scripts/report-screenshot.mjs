#!/usr/bin/env node
// docs/report.png: the report of the demo world (`pinleak demo --keep-db`), as headless
// Chromium shows it. Needs root (the demo builds its world) and `npm run build`.
//
//   node scripts/report-screenshot.mjs [--out docs/report.png] [--dark]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPage } from './browser.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist/pinleak.mjs');
const args = process.argv.slice(2);
const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(ROOT, 'docs/report.png');
const colorScheme = args.includes('--dark') ? 'dark' : 'light';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-shot-'));
try {
  const db = path.join(dir, 'demo.db');
  const html = path.join(dir, 'report.html');
  const run = (argv) => {
    const r = spawnSync(process.execPath, [CLI, ...argv], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    if (r.status !== 0) throw new Error(`pinleak ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  };
  run(['demo', '--keep-db', db]);
  run(['--db', db, 'report', '--output', html]);
  const { page, problems, close } = await openPage(html, { colorScheme, height: 1500 });
  try {
    if (problems.length) throw new Error(`the page had problems:\n${problems.join('\n')}`);
    await page.screenshot({ path: out });
  } finally {
    await close();
  }
  console.log(`wrote ${out}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
