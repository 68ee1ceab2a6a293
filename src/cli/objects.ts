// pinleak objects [SNAPSHOT]: every BPF object on the host, grouped by the tool it belongs to;
// with --unexplained, the objects nothing pinleak can name keeps alive.
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION, type HostObject, type ObjectsDoc } from '../model.js';
import { objectTotals, ownerMatches, ownerTotals } from '../analysis/objects.js';
import { loadObjects, resolveSnapshot } from '../store/index.js';
import { renderObjects } from '../report/objects.js';
import { type GlobalArgs, openDb, emitJson, say, outStyle, listOf } from './common.js';

const KINDS = ['map', 'prog', 'link'] as const;

interface Args extends GlobalArgs {
  snapshot?: string;
  kind?: HostObject['kind'][];
  owner?: string;
  unexplained: boolean;
}

export function objectFilter(a: { kind?: HostObject['kind'][]; owner?: string; unexplained?: boolean }): (o: HostObject) => boolean {
  const kinds = a.kind;
  return (o) => (!kinds || kinds.includes(o.kind))
    && (a.owner === undefined || ownerMatches(o, a.owner))
    && (!a.unexplained || o.unexplained !== null);
}

export const objectsCommand = {
  command: 'objects [snapshot]',
  describe: 'every BPF object on the host, pinned or not: which tools are running, their memory, and what nothing explains',
  builder: (y: Argv) => y
    .positional('snapshot', { type: 'string', describe: 'id, label, latest or latest~N (default latest)' })
    .option('kind', { type: 'string', coerce: listOf(KINDS, 'kind'), describe: `only these kinds (${KINDS.join(', ')}), comma-separated` })
    .option('owner', { type: 'string', describe: 'only this owner: a tool, a container id (12+ characters), a systemd unit, or "unknown"' })
    .option('unexplained', { type: 'boolean', default: false, describe: 'only objects alive with no pin, no holder and no reference pinleak can name' }),
  handler: (a: Args) => {
    const keep = objectFilter(a);
    const store = openDb(a, 'read');
    try {
      const { snapshot, objects } = loadObjects(store, resolveSnapshot(store, a.snapshot ?? 'latest'));
      if (!objects) {
        throw new PinleakError(`snapshot ${snapshot.id} was taken before pinleak recorded every object: take a new one with \`pinleak scan\``);
      }
      const listed = objects.filter(keep);
      const doc: ObjectsDoc = {
        schemaVersion: SCHEMA_VERSION, snapshot, objects: listed,
        summary: { ...objectTotals(listed), byOwner: ownerTotals(listed) },
      };
      if (a.json) emitJson(doc);
      else say(a, renderObjects(doc, outStyle(a), { unexplained: a.unexplained }));
    } finally {
      store.close();
    }
  },
};
