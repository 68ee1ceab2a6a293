// Retention from the config file (DEFAULT_RETENTION when it sets none), applied after every
// stored scan so cron never grows the database without bound.
import { pruneSnapshots, type Store } from '../store/index.js';
import { DEFAULT_RETENTION, parseDuration, type Config } from '../analysis/config.js';

export function applyRetention(store: Store, config: Config): number {
  const set = config.retention && (config.retention.keep !== undefined || config.retention.olderThan !== undefined);
  const r = set ? config.retention! : DEFAULT_RETENTION;
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
