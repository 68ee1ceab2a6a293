// The SQLite store (SPEC section 5).
export { openStore, writeTransaction, BUSY_TIMEOUT_MS, type Store, type OpenOptions } from './db.js';
export { DB_SCHEMA_VERSION } from './schema.js';
export { saveSnapshot } from './save.js';
export { loadSnapshot } from './load.js';
export { listSnapshots, resolveSnapshot, namesSnapshotById, type SnapshotListEntry } from './snapshots.js';
export {
  earliestHolders, recordCreators, staleRuns, recordedCreators, pinObjectCache,
  type HolderSighting, type CreatorRecord,
} from './history.js';
export { recordAction, listActions, type ActionRecord, type ActionEntry } from './actions.js';
export { pruneSnapshots, type PruneOptions } from './prune.js';
export { loadObjects, unexplainedSince } from './objects.js';
export { historySeries, type HistorySeries, type SeriesPoint, type LeakBytes } from './series.js';
export { copyStore } from './copy.js';
export {
  savePinRecords, pinRecordsOf, listPinRecords, prunePinRecords, openWatchSession, coverWatchSession, endWatchSession,
  watchSessions, type StoredPinRecord, type WatchSession,
} from './watch.js';
