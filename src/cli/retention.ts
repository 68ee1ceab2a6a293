// Retention from the config file, applied after every stored scan so cron never grows the database without bound.
import { pruneSnapshots, type Store } from '../store/index.js';
import { parseDuration, type Config } from '../analysis/config.js';

export function applyRetention(store: Store, config: Config): number {
  const r = config.retention;
  if (!r || (r.keep === undefined && r.olderThan === undefined)) return 0;
  return pruneSnapshots(store, {
    keep: r.keep,
    olderThanMs: r.olderThan !== undefined ? parseDuration(r.olderThan) : undefined,
  }).removed;
}

/** After a stored snapshot: the snapshot is safe, so a retention hiccup (a busy database) is only a warning. */
export function retentionAfterStore(store: Store, config: Config): void {
  try {
    applyRetention(store, config);
  } catch (e) {
    process.stderr.write(`pinleak: warning: retention not applied: ${(e as Error).message}\n`);
  }
}
