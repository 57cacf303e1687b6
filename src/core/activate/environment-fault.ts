/**
 * The fault rule: a full or read-only disk, permissions, systemd, a lost lock: the environment's.
 * Never lets such a fault mark a release bad; before the restart it changes nothing (exit 1).
 */

import { SystemdError } from '../../adapters/systemctl.js';
import { ReleaseError, NothingChangedError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/**
 * The fault rule: a release is marked bad only when IT failed its gate (its units, its HTTP
 * answer, its check). A read-only or full disk, a permission, a missing or failing systemctl,
 * systemd out of reach or a lost lock are faults of the environment: they never mark a release
 * bad, and before the restart they leave everything as it was (exit 1, the cause and a hint).
 */
export class EnvironmentFault extends ReleaseError {
  constructor(
    message: string,
    hint: string,
    readonly underlying: unknown,
  ) {
    super(message, ExitCode.failed, hint);
  }
}

const ERRNO_HINTS: Record<string, string> = {
  EROFS: 'the filesystem is mounted read-only: remount it read-write (`mount -o remount,rw <mountpoint>`) and run the command again',
  ENOSPC: 'the disk is full: free space (`df -h`, `smolotchi release prune`) and run the command again',
  EDQUOT: 'a disk quota is exhausted: free space and run the command again',
  EACCES: 'permission denied: run it as root (sudo) and check the owner and mode of the folder named',
  EPERM: 'operation not permitted: run it as root (sudo); an immutable file (`lsattr`) or a security module can refuse too',
  EIO: 'the storage reported an I/O error: check the SD card or disk (`dmesg`) before anything else',
};

const SQLITE_ENV = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|PERM)/;

/** A lost release lock (someone removed or took it under us): the environment, never the release. */
export class LockLostError extends ReleaseError {
  constructor(file: string) {
    super(`the release lock ${file} was removed or taken by another process during the deploy`, ExitCode.failed);
  }
}

/** The environmental cause of an error as a fault with a hint, or null when the release may be to blame. */
export function environmentFault(err: unknown): EnvironmentFault | null {
  if (err instanceof EnvironmentFault) return err;
  if (err instanceof NothingChangedError) return environmentFault(err.reason) ?? null;
  const message = (err as Error)?.message ?? String(err);
  if (err instanceof SystemdError) {
    if (!err.environmental) return null;
    return new EnvironmentFault(
      `systemd could not be asked: ${message}`,
      'check that systemd runs (`systemctl is-system-running`) and that --systemctl names the real binary, then run the command again',
      err,
    );
  }
  if (err instanceof LockLostError) return new EnvironmentFault(message, 'find who removed the lock (`smolotchi release status` names a holder), then run the command again', err);
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && ERRNO_HINTS[code]) return new EnvironmentFault(message, ERRNO_HINTS[code]!, err);
  if (typeof code === 'string' && SQLITE_ENV.test(code)) {
    return new EnvironmentFault(`the history database failed: ${message}`, 'check the disk holding /var/lib/smolotchi (full, read-only, permissions), then run the command again', err);
  }
  return null;
}
