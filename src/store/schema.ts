// The database schema: forward-only migrations, versioned with PRAGMA user_version.
// Migration N (1-based) turns a version N-1 database into version N. Never edit a
// migration that has shipped; append a new one.
import type Database from 'better-sqlite3';

/** PRAGMA application_id of a pinleak database ('PNLK'): tells ours from other SQLite files. */
export const APPLICATION_ID = 0x504e4c4b;

type Migration = (db: Database.Database) => void;

const V1 = `
-- One row per stored scan. The counts used by \`pinleak snapshots\` are computed once,
-- when the snapshot is saved, so listing stays fast however many pins there are.
CREATE TABLE snapshots (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids are quoted in CI scripts and audit rows
  schema_version INTEGER NOT NULL,                   -- SnapshotDoc.schemaVersion (JSON contract)
  taken_at       TEXT NOT NULL,
  boot_id        TEXT NOT NULL,
  hostname       TEXT,
  kernel         TEXT,
  label          TEXT,
  duration_ms    INTEGER,
  pin_count      INTEGER NOT NULL,
  leak_count     INTEGER NOT NULL,                   -- pins orphaned or leaked
  leaked_bytes   INTEGER NOT NULL,                   -- memlock of their objects, each object once
  summary_json   TEXT NOT NULL,                      -- SnapshotDoc.summary (derived data, kept verbatim)
  extra          TEXT                                -- JSON: fields unknown to this version (doc, snapshot meta)
);
CREATE INDEX snapshots_label ON snapshots(label, id) WHERE label IS NOT NULL;
CREATE INDEX snapshots_boot ON snapshots(boot_id, id);

CREATE TABLE namespaces (
  id              INTEGER PRIMARY KEY,
  snapshot_id     INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  mnt_ns          INTEGER,
  reached_via     TEXT,
  pids_json       TEXT,
  process_count   INTEGER,
  nsfs_paths_json TEXT,
  error           TEXT,
  container_json  TEXT,   -- NULL: field absent; otherwise JSON (may be 'null')
  extra           TEXT
);
CREATE INDEX namespaces_snapshot ON namespaces(snapshot_id, mnt_ns);

CREATE TABLE instances (
  id              INTEGER PRIMARY KEY,
  snapshot_id     INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  dev             TEXT NOT NULL,
  delegation_json TEXT,
  pin_count       INTEGER,
  memlock_bytes   INTEGER,
  error           TEXT,
  extra           TEXT
);
CREATE INDEX instances_snapshot ON instances(snapshot_id, dev);

-- The mount points of an instance (one superblock can be mounted many times).
CREATE TABLE mounts (
  id            INTEGER PRIMARY KEY,
  instance_id   INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  mnt_ns        INTEGER,
  mount_id      INTEGER,
  mount_point   TEXT,
  root          TEXT,
  super_options TEXT,
  extra         TEXT
);
CREATE INDEX mounts_instance ON mounts(instance_id);

-- One row per distinct BPF object per snapshot; pins reference it.
CREATE TABLE objects (
  id            INTEGER PRIMARY KEY,
  snapshot_id   INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  kind          TEXT NOT NULL,
  obj_id        INTEGER NOT NULL,   -- the kernel's map/prog/link id
  name          TEXT,
  type          TEXT,
  memlock_bytes INTEGER,
  extra         TEXT
);
CREATE INDEX objects_snapshot ON objects(snapshot_id, kind, obj_id);

CREATE TABLE pins (
  id                     INTEGER PRIMARY KEY,
  snapshot_id            INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  instance               TEXT NOT NULL,   -- the instance's MAJ:MIN
  path                   TEXT NOT NULL,   -- relative to the instance's root
  mount_paths_json       TEXT,
  inode                  INTEGER,
  created_at             TEXT,
  uid                    INTEGER,
  gid                    INTEGER,
  mode                   TEXT,
  object_id              INTEGER REFERENCES objects(id) ON DELETE CASCADE,  -- NULL: unreadable pin
  status                 TEXT NOT NULL,
  reasons_json           TEXT,
  used_by_json           TEXT,
  owner_tool             TEXT,
  owner_persistent       INTEGER,
  owner_path_pid         INTEGER,
  owner_path_pid_alive   INTEGER,
  creator_pid            INTEGER,         -- NULL: creator null
  creator_start_time     INTEGER,
  creator_comm           TEXT,
  creator_alive          INTEGER,
  creator_first_seen     INTEGER,
  creator_source         TEXT,            -- NULL: field absent
  creator_container_json TEXT,            -- NULL: field absent
  error_json             TEXT,            -- NULL: field absent; otherwise JSON (may be 'null')
  extra                  TEXT             -- JSON: unknown pin fields; unknown owner/creator fields under "owner"/"creator"
);
CREATE INDEX pins_snapshot_path ON pins(snapshot_id, instance, path);   -- load, diff
CREATE INDEX pins_object ON pins(object_id);

-- Processes seen holding objects, per snapshot. A process is (pid, start_time).
CREATE TABLE processes (
  id             INTEGER PRIMARY KEY,
  snapshot_id    INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  pid            INTEGER NOT NULL,
  start_time     INTEGER NOT NULL,
  comm           TEXT,
  mnt_ns         INTEGER,
  container_json TEXT
);
CREATE INDEX processes_snapshot ON processes(snapshot_id);
CREATE INDEX processes_identity ON processes(pid, start_time);

-- pin (and so object) <-> process, with the fds it holds.
CREATE TABLE holders (
  id         INTEGER PRIMARY KEY,
  pin_id     INTEGER NOT NULL REFERENCES pins(id) ON DELETE CASCADE,
  process_id INTEGER NOT NULL REFERENCES processes(id) ON DELETE CASCADE,
  fds_json   TEXT,
  mmapped    INTEGER,   -- NULL: field absent
  extra      TEXT
);
CREATE INDEX holders_pin ON holders(pin_id);
CREATE INDEX holders_process ON holders(process_id);

-- History index for creator evidence #2: the first stored snapshot of a boot in which
-- each (pid, start_time) held each object, so the query does not grow with the number of
-- snapshots. Written by saveSnapshot; prune keeps a sighting as long as its object is in
-- any remaining snapshot (a leak seen held long ago stays "leaked" after retention).
CREATE TABLE sightings (
  boot_id           TEXT NOT NULL,
  kind              TEXT NOT NULL,
  obj_id            INTEGER NOT NULL,
  pid               INTEGER NOT NULL,
  start_time        INTEGER NOT NULL,
  first_snapshot_id INTEGER NOT NULL,   -- no foreign key: the evidence outlives a pruned snapshot
  comm              TEXT,
  container_json    TEXT,
  PRIMARY KEY (boot_id, kind, obj_id, pid, start_time)
) WITHOUT ROWID;
CREATE INDEX sightings_snapshot ON sightings(first_snapshot_id);
CREATE INDEX objects_identity ON objects(kind, obj_id);   -- prune: is an object still in any snapshot?

CREATE TABLE scan_errors (
  id          INTEGER PRIMARY KEY,
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  scope       TEXT,
  message     TEXT,
  extra       TEXT
);
CREATE INDEX scan_errors_snapshot ON scan_errors(snapshot_id);

-- Creators recorded by \`pinleak run\` (creator evidence #1). The first record of an
-- object wins. snapshot_id is informational (no foreign key): it survives prune.
CREATE TABLE creators (
  boot_id        TEXT NOT NULL,
  kind           TEXT NOT NULL,
  obj_id         INTEGER NOT NULL,
  pid            INTEGER NOT NULL,
  start_time     INTEGER NOT NULL,
  comm           TEXT,
  container_json TEXT,
  source         TEXT,
  snapshot_id    INTEGER,
  PRIMARY KEY (boot_id, kind, obj_id)
) WITHOUT ROWID;

-- \`pinleak clean\` audit trail: never pruned, no foreign keys, so a row never changes.
CREATE TABLE actions (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL,
  action      TEXT NOT NULL,
  instance    TEXT,
  path        TEXT,
  object_kind TEXT,
  object_id   INTEGER,
  bytes       INTEGER,
  actor       TEXT,
  snapshot_id INTEGER
);

PRAGMA application_id = ${APPLICATION_ID};
`;

// Stale persistent pins (issue 14).
const V2 = `
-- pin.stale: NULL field absent (stored before it existed); otherwise JSON (may be 'null').
ALTER TABLE pins ADD COLUMN stale_json TEXT;

-- The history behind "unused since snapshot 12, 3 days": per boot and object, the first
-- stored snapshot of its current unbroken run of scans that found it stale. Written by
-- saveSnapshot (a stored scan that finds the object used ends the run: its row goes), read
-- by one indexed query per scan. No foreign key: the run outlives a pruned snapshot.
CREATE TABLE stale_runs (
  boot_id           TEXT NOT NULL,
  kind              TEXT NOT NULL,
  obj_id            INTEGER NOT NULL,
  since             TEXT NOT NULL,
  first_snapshot_id INTEGER NOT NULL,
  PRIMARY KEY (boot_id, kind, obj_id)
) WITHOUT ROWID;
`;

// Every BPF object on the host per snapshot (issue 16), pinned or not. Columns for what
// `objects` filters on and the history query reads; the nested lists as JSON.
const V3 = `
ALTER TABLE snapshots ADD COLUMN object_count INTEGER;   -- NULL: taken before objects were recorded
CREATE TABLE host_objects (
  id                 INTEGER PRIMARY KEY,
  snapshot_id        INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  kind               TEXT NOT NULL,
  obj_id             INTEGER NOT NULL,
  name               TEXT,
  type               TEXT,
  memlock_bytes      INTEGER,             -- NULL: unknown
  loaded_at          TEXT,
  loader_uid         INTEGER,
  owner_tool         TEXT,                -- NULL: no owner
  owner_json         TEXT,
  pins_json          TEXT,
  holders_json       TEXT,
  referenced_by_json TEXT,
  references_json    TEXT,
  unexplained_json   TEXT,                -- NULL: explained
  note               TEXT,
  extra              TEXT                 -- JSON: fields unknown to this version
);
CREATE INDEX host_objects_snapshot ON host_objects(snapshot_id, kind, obj_id);
-- how long an object has been unexplained: its latest earlier unexplained row
CREATE INDEX host_objects_unexplained ON host_objects(kind, obj_id, snapshot_id) WHERE unexplained_json IS NOT NULL;
`;

// Who pinned what (issue 11): every BPF_OBJ_PIN the recorder of \`pinleak watch\` or
// \`pinleak run\` saw, failed ones too, joined to pins by (boot, kind, id): paths change by
// rename and hard links, and a relative or path-fd name says nothing on its own. No
// foreign keys: records outlive pruned snapshots (watch prunes them by age).
const V4 = `
CREATE TABLE pin_records (
  id                INTEGER PRIMARY KEY,
  boot_id           TEXT NOT NULL,
  at                TEXT NOT NULL,      -- when the syscall returned (ISO)
  kind              TEXT NOT NULL,      -- map, prog, link; unknown: bpf_fd was no BPF object
  obj_id            INTEGER NOT NULL,   -- 0 when unknown
  ret               INTEGER NOT NULL,   -- 0, or -errno of a refused pin
  pid               INTEGER NOT NULL,
  start_time        INTEGER NOT NULL,   -- clock ticks after boot, as /proc/<pid>/stat field 22
  comm              TEXT,
  ppid              INTEGER,
  parent_start_time INTEGER,
  cgroup_id         INTEGER,
  cgroup_path       TEXT,               -- NULL: the cgroup was gone before it was resolved
  container_json    TEXT,
  mnt_ns            INTEGER,
  path              TEXT NOT NULL,      -- as passed (relative to the cwd or path_fd unless absolute)
  path_truncated    INTEGER NOT NULL,
  bpf_fd            INTEGER,
  file_flags        INTEGER,
  path_fd           INTEGER,
  session_id        INTEGER             -- the watch session that recorded it; NULL: pinleak run
);
CREATE INDEX pin_records_object ON pin_records(boot_id, kind, obj_id);
CREATE INDEX pin_records_at ON pin_records(at);

-- Each \`pinleak watch\`: while it records (recording = 1), a pin made between started_at
-- and covered_until has a record unless one was dropped. covered_until moves after every
-- drain that was stored, so a watch killed by SIGKILL covers what it stored.
CREATE TABLE watch_sessions (
  id            INTEGER PRIMARY KEY,
  boot_id       TEXT NOT NULL,
  pid           INTEGER NOT NULL,
  start_time    INTEGER NOT NULL,
  started_at    TEXT NOT NULL,
  covered_until TEXT NOT NULL,
  ended_at      TEXT,
  recording     INTEGER NOT NULL,
  note          TEXT,               -- why it does not record (the kernel refused the recorder)
  drops         INTEGER NOT NULL DEFAULT 0
);
`;

// Rows shared across snapshots (issue 12): a pins row (with its objects, holders and
// processes rows) and a host_objects row stand for every snapshot from snapshot_id through
// last_snapshot_id (NULL: through the latest) that found it identical, so a scan that finds
// a pin or an object unchanged writes nothing for it. digest names the content (the
// snapshot document's JSON of it), the key the next scan compares with. Prune moves a row's
// snapshot_id to the first snapshot it still stands for before the cascade. Rows of
// earlier versions stand for their own snapshot only.
const V5 = `
ALTER TABLE pins ADD COLUMN last_snapshot_id INTEGER;
ALTER TABLE pins ADD COLUMN digest TEXT;
UPDATE pins SET last_snapshot_id = snapshot_id;
CREATE INDEX pins_last ON pins(last_snapshot_id);
ALTER TABLE host_objects ADD COLUMN last_snapshot_id INTEGER;
ALTER TABLE host_objects ADD COLUMN digest TEXT;
UPDATE host_objects SET last_snapshot_id = snapshot_id;
CREATE INDEX host_objects_last ON host_objects(last_snapshot_id);
-- 1: the snapshot's pins and objects come back in their canonical order (they may share
-- rows with other snapshots); NULL or 0: in row order (the document was saved in another)
ALTER TABLE snapshots ADD COLUMN canonical_order INTEGER;
`;

// The digest of a snapshot's whole pins and host_objects sections (canonical documents
// only): a save that finds the latest snapshot's digest again leaves every open row open,
// with no per-row work. NULL: unknown, the rows are compared one by one.
const V6 = `
ALTER TABLE snapshots ADD COLUMN pins_digest TEXT;
ALTER TABLE snapshots ADD COLUMN objects_digest TEXT;
`;

// The object cache of a boot's latest stored scan (a scan's pinObjectCache), as one JSON
// value written with the snapshot: reading it back from the pins and objects rows took a
// join over every pin (~20 ms at 10,000 pins) at the start of every scan.
const V7 = `
CREATE TABLE object_cache (
  boot_id     TEXT PRIMARY KEY,
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  entries     TEXT NOT NULL                        -- JSON: ObjectCacheEntry[] (src/model.ts) of its pins
);
`;

export const MIGRATIONS: readonly Migration[] = [
  (db) => db.exec(V1),
  (db) => db.exec(V2),
  (db) => db.exec(V3),
  (db) => db.exec(V4),
  (db) => db.exec(V5),
  (db) => db.exec(V6),
  (db) => db.exec(V7),
];

/** The schema version (PRAGMA user_version) this code writes. */
export const DB_SCHEMA_VERSION = MIGRATIONS.length;
