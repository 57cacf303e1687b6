/**
 * The typed errors: one line of message, an exit code, an optional hint.
 * Never exits or prints: src/cli.ts turns them into text and exit codes.
 */

import { ExitCode, type ExitCodeValue } from './exit-codes.js';

/** Every expected failure is a ReleaseError: one line of message, an exit code, an optional hint. */
export class ReleaseError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.failed,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad command line, bad version string, bad setting: exit 2, nothing touched. */
export class UsageError extends ReleaseError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.usage, hint);
  }
}

/** Unknown version, missing release or source: exit 3. */
export class NotFoundError extends ReleaseError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.notFound, hint);
  }
}

/** Checksum, signature, hostile archive, tampered tree: exit 4. */
export class IntegrityError extends ReleaseError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.integrity, hint);
  }
}

/** Another live process holds the release lock: exit 75 (EX_TEMPFAIL). */
export class LockHeldError extends ReleaseError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.locked, hint);
  }
}

/**
 * A step failed before it changed anything the running system sees (the disk filled while unit
 * files were being staged, say): the caller fails cleanly instead of rolling back what never moved.
 */
export class NothingChangedError extends ReleaseError {
  constructor(
    message: string,
    readonly reason: unknown,
    hint?: string,
  ) {
    super(message, undefined, hint);
  }
}

const FULL = /ENOSPC|EDQUOT|No space left on device|Disk quota exceeded|SQLITE_FULL|database or disk is full/i;

/** Did this fail because a filesystem filled up (our own write, a child's, or SQLite's)? */
export function isDiskFull(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; reason?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && FULL.test(e.code)) return true;
  if (typeof e.message === 'string' && FULL.test(e.message)) return true;
  return e.reason !== undefined && e.reason !== err && isDiskFull(e.reason);
}
