/**
 * The install refusals the history decides: a downgrade, a release marked bad, a moved tag.
 * Never lets one pass without the operator's explicit flag (--allow-downgrade, --force).
 */

import { IntegrityError, ReleaseError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { HistoryStore } from '../state/history.js';
import { compareVersions } from '../version.js';

/** `rollback` is the way back; going below the running version through install is deliberate only. */
export function refuseDowngrade(current: string | null, version: string, allow: boolean | undefined): void {
  if (current && !allow && compareVersions(version, current) < 0) {
    throw new UsageError(`${version} is older than the current ${current}`, 'use `smolotchi release rollback --to` for a release on disk, or pass --allow-downgrade');
  }
}

/** A release that failed its gate is not installed again without --force. */
export function refuseBadRelease(history: HistoryStore | null, version: string, force: boolean | undefined): void {
  const mark = history?.marks().get(version);
  if (mark?.state === 'bad' && !force) {
    const why = mark.reason ?? (mark.markedBy === 'operator' ? 'by an operator' : 'failed its health gate');
    throw new ReleaseError(`release ${version} is marked bad: ${why}`, ExitCode.failed, 'pass --force to try it again');
  }
}

/**
 * A version names one commit forever: a tag that now points elsewhere than at its first install
 * means the source was rewritten (or tampered with), so it is refused unless --force.
 */
export function refuseMovedTag(history: HistoryStore | null, version: string, commit: string | undefined, force: boolean | undefined): void {
  const known = commit ? history?.tagCommit(version) : null;
  if (commit && known && known !== commit && !force) {
    throw new IntegrityError(`tag of ${version} now points at ${commit.slice(0, 12)}, but it was ${known.slice(0, 12)} when first installed`, 'pass --force if the tag was moved on purpose');
  }
}
