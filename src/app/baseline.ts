// A baseline is a stored snapshot (id, label, latest, latest~N) or a file written by `scan --json`.
import fs from 'node:fs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION, type SnapshotDoc } from '../model.js';
import { loadSnapshot, resolveSnapshot, type Store } from '../store/index.js';

/** A spec with a slash or a .json ending is a file, whether or not it exists (so never a label). */
export const looksLikeFile = (spec: string): boolean => spec.includes('/') || spec.endsWith('.json');

/** A spec that names an existing file (or looks like a path) is read as a `scan --json` document. */
export function loadBaseline(store: Store | null, spec: string): SnapshotDoc {
  if (looksLikeFile(spec) || (fs.existsSync(spec) && fs.statSync(spec).isFile())) return readSnapshotFile(spec);
  if (!store) throw new PinleakError(`unknown snapshot "${spec}": there is no database yet; run \`pinleak scan\` first or pass a file from \`pinleak scan --json\``);
  return loadSnapshot(store, resolveSnapshot(store, spec ?? 'latest'));
}

export function readSnapshotFile(file: string): SnapshotDoc {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PinleakError(`cannot read baseline ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: SnapshotDoc;
  try {
    doc = JSON.parse(text) as SnapshotDoc;
  } catch (e) {
    throw new PinleakError(`baseline ${file} is not valid JSON (${(e as Error).message}); write it with \`pinleak scan --json > FILE\``);
  }
  if (!doc || typeof doc !== 'object' || !doc.snapshot || !Array.isArray(doc.pins) || !Array.isArray(doc.instances) || !doc.summary) {
    throw new PinleakError(`baseline ${file} is not a pinleak snapshot document; write it with \`pinleak scan --json > FILE\``);
  }
  if (doc.schemaVersion !== SCHEMA_VERSION) {
    throw new PinleakError(`baseline ${file} has schemaVersion ${String(doc.schemaVersion)}, this pinleak reads ${SCHEMA_VERSION}`);
  }
  return doc;
}
