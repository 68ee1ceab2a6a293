// A store opened only to read history (scan --no-store): absent is fine, broken is an error.
import fs from 'node:fs';
import type { Store } from '../store/index.js';
import { dbPath, openDb, type GlobalArgs } from './common.js';

export function openHistory(a: GlobalArgs): Store | null {
  return fs.existsSync(dbPath(a)) ? openDb(a, 'read') : null;
}
