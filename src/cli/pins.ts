// pinleak pins [SNAPSHOT]: every pin with its object, holders, status and reasons.
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { STATUSES, type Pin, type Status } from '../model.js';
import { globMatch, globProblem } from '../analysis/owners.js';
import { renderPins } from '../report/text.js';
import { type GlobalArgs, openDb, loadStored, emitJson, say, outStyle, listOf, instanceOption } from './common.js';
import { announcePartial } from './common.js';

interface Args extends GlobalArgs {
  snapshot?: string;
  status?: Status[];
  instance?: string;
  path?: string;
  stale?: boolean;
}

export interface PinFilter {
  status?: Status[];
  instance?: string;
  path?: string;
  /** only stale persistent pins */
  stale?: boolean;
}

/** --status S[,S], --instance MAJ:MIN, --path GLOB (relative to the instance's root). */
export function pinFilter(f: PinFilter): (p: Pin) => boolean {
  const statuses = f.status;
  const glob = f.path?.replace(/^\/+/, ''); // checked by globOption
  return (p) => (!statuses || statuses.includes(p.status))
    && (!f.instance || p.instance === f.instance)
    && (glob === undefined || globMatch(glob, p.path.replace(/^\/+/, '')))
    && (!f.stale || !!p.stale);
}

/** --path GLOB, checked before any database is opened. */
const globOption = (glob: string): string => {
  const problem = globProblem(glob.replace(/^\/+/, ''));
  if (problem) throw new PinleakError(`--path ${glob}: ${problem}`);
  return glob;
};

/** --instance and --path, shared by pins, leaks and clean. */
export const placeOptions = (y: Argv) => y
  .option('instance', { type: 'string', coerce: instanceOption, describe: 'only this bpffs instance (MAJ:MIN)' })
  .option('path', { type: 'string', coerce: globOption, describe: 'only pins whose path below the instance root matches this glob (/app/**, **/name)' });

export const filterOptions = (y: Argv) => placeOptions(y
  .option('status', { type: 'string', coerce: listOf(STATUSES, 'status'), describe: `only these statuses (${STATUSES.join(', ')}), comma-separated` }));

export const pinsCommand = {
  command: 'pins [snapshot]',
  describe: 'every pin of a snapshot with its object, holders, status and reasons',
  builder: (y: Argv) => filterOptions(y.positional('snapshot', { type: 'string', describe: 'id, label, latest or latest~N (default latest)' }))
    .option('stale', { type: 'boolean', default: false, describe: 'only persistent pins that nothing uses any more' }),
  handler: (a: Args) => {
    const keep = pinFilter(a);
    const store = openDb(a, 'read');
    try {
      const doc = loadStored(store, a.snapshot);
      announcePartial(a, doc.snapshot);
      if (a.json) {
        emitJson({ ...doc, pins: doc.pins.filter(keep) });
      } else {
        say(a, renderPins(doc.pins.filter(keep), outStyle(a)));
      }
    } finally {
      store.close();
    }
  },
};
