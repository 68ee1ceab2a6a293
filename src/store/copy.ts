// A consistent copy of the database in a new file (VACUUM INTO: a snapshot of one read
// transaction, compacted, WAL folded in), renamed into place so a reader never sees half.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PinleakError } from '../errors.js';
import { guarded, type Store } from './db.js';

export const copyStore = guarded(function copyStore(store: Store, file: string): void {
  const target = path.resolve(file);
  if (target === path.resolve(store.path)) throw new PinleakError(`${file} is the database being copied: name another file`);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    store.db.prepare('VACUUM INTO ?').run(tmp);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if ((e as { code?: string }).code?.startsWith('SQLITE_') && !(e as { code?: string }).code?.startsWith('SQLITE_CANTOPEN')) throw e;
    throw new PinleakError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check that the directory exists and is writable`);
  }
});
