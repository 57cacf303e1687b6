/**
 * Recognises a full disk (ENOSPC, EDQUOT, SQLITE_FULL) and records a deploy's failure with a hint.
 * Never hides another error: anything that is not a full disk passes through unchanged.
 */

import type { Context } from '../context.js';
import { isDiskFull, ReleaseError } from '../errors.js';
import type { DeployJournal } from '../state/journal.js';

/** A full disk becomes one clear message with what to do; any other error is returned unchanged. */
export function explainDiskFull(err: unknown, ctx: Context): unknown {
  if (!isDiskFull(err)) return err;
  const message = (err as Error).message ?? String(err);
  return new ReleaseError(
    `disk full: ${message.replace(/^disk full: /, '')}`,
    undefined,
    `free space on the filesystem holding ${ctx.layout.optDir} (see \`df -h\`, \`smolotchi release prune\`) and run the command again; current was not switched`,
  );
}

/** Record a failed deploy; when even that cannot be written (full disk), the next command marks it interrupted. */
export function finishFailed(ctx: Context, journal: DeployJournal, err: unknown): void {
  try {
    journal.finish('failed', (err as Error)?.message ?? String(err));
  } catch (e) {
    ctx.log.warn(`could not record the failure in the history (${(e as Error).message}); the next command will mark deploy #${journal.id} interrupted`);
  }
}

/** The `.catch` of a deploy step: the failure, explained, is recorded on the row and rethrown. */
export function failDeploy(ctx: Context, journal: DeployJournal): (err: unknown) => never {
  return (err) => {
    const e = explainDiskFull(err, ctx);
    finishFailed(ctx, journal, e);
    throw e;
  };
}
