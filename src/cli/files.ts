// Output files are written to a temporary file in the same directory and renamed, so a
// reader (CI, node_exporter) never sees half a file.
import fs from 'node:fs';
import path from 'node:path';
import { PinleakError } from '../errors.js';

export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, content, { mode });
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw new PinleakError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check that the directory exists and is writable`);
  }
}
