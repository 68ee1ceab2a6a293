// What commands do with a partial snapshot (one that could not see the whole host): say
// so first, and never judge or act on it.
import { PinleakError } from '../errors.js';
import type { SnapshotMeta } from '../model.js';
import { partialBanner, partialReasonsOf, snapshotRef } from '../report/text.js';
import { type GlobalArgs, outStyle, say } from './common.js';

/** The banner at the top of a command's text (on stderr with --json); with --quiet, one warning line. */
export function announcePartial(a: GlobalArgs, m: SnapshotMeta): void {
  const banner = partialBanner(m, outStyle(a));
  if (!banner) return;
  if (a.quiet) process.stderr.write(`pinleak: warning: ${snapshotRef(m)} is partial: ${partialReasonsOf(m).join('; ')}\n`);
  else say(a, banner);
}

/** A PinleakError (exit 2) when `m` is partial: `what` says what is not done, e.g. "--fail-on-leak does not judge it". */
export function refusePartial(m: SnapshotMeta, what: string): void {
  const why = partialReasonsOf(m);
  if (why.length) throw new PinleakError(`${snapshotRef(m)} could not see the whole host: ${why.join('; ')}; ${what}`);
}
