// Files of the installed package, found from wherever this code was loaded: the bundle
// (dist/pinleak.mjs), tsc's output (dist/cli/*.js) or the sources (under vitest).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PinleakError } from './errors.js';

let root: string | null = null;

export function packageRoot(): string {
  if (root === null) {
    let d = path.dirname(fileURLToPath(import.meta.url));
    while (!fs.existsSync(path.join(d, 'package.json'))) {
      const up = path.dirname(d);
      if (up === d) throw new PinleakError('its package.json is missing; reinstall pinleak');
      d = up;
    }
    root = d;
  }
  return root;
}

/** Where the JSON Schemas of the --json documents are, installed (docs/schema/ ships in the package) or in the repository. */
export function schemaDir(): string {
  const dir = path.join(packageRoot(), 'docs', 'schema');
  return fs.existsSync(dir) ? dir : "docs/schema/ in pinleak's repository";
}

export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
}

