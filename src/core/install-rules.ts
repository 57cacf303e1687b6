import { ReleaseError, UsageError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import type { HistoryStore } from './history.js';
import { compareVersions } from './version.js';

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
    throw new ReleaseError(`release ${version} is marked bad: ${mark.reason ?? 'failed its health gate'}`, ExitCode.failed, 'pass --force to try it again');
  }
}
