// Output files are written to a temporary file in the same directory, flushed to disk and
// renamed, so a reader (CI, node_exporter) never sees half a file, not even after a crash
// (without the fsync a rename can reach the disk before the data: an empty file).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PinleakError } from '../errors.js';

/**
 * `refuse`: files this output must never replace (the database and its WAL). The temporary
 * name is random and created exclusively (O_EXCL, no symlink followed), so another user
 * cannot plant a link there for root to write through.
 */
export function writeFileAtomic(file: string, content: string, opts: { mode?: number; refuse?: string[] } = {}): void {
  const target = path.resolve(file);
  for (const r of opts.refuse ?? []) {
    const base = path.resolve(r);
    if ([base, `${base}-wal`, `${base}-shm`].includes(target)) {
      throw new PinleakError(`${file} is the pinleak database: write the output somewhere else`);
    }
  }
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
    try {
      fs.writeFileSync(fd, content);
      fs.fchmodSync(fd, opts.mode ?? 0o644); // whatever the umask
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
    syncDirectory(path.dirname(target));
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw new PinleakError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check that the directory exists and is writable`);
  }
}

/** The rename itself on disk. Best effort: the file is whole either way, and some file systems refuse a directory fsync. */
function syncDirectory(dir: string): void {
  try {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* EINVAL on some file systems: nothing more to do */
  }
}
