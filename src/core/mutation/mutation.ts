/**
 * The frame of every mutating command: take the lock, repair what a crash left, run, release.
 * Never runs a mutation without the lock and recovery, nor returns or throws with the lock held.
 */

import type { Context } from '../context.js';
import { ReleaseError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { isDeviceRoot } from '../layout.js';
import { killPoint } from '../killpoint.js';
import { acquireLock, type ReleaseLock } from '../state/lock.js';
import { recover, type RecoveryReport } from './recovery.js';

export interface MutationScope {
  lock: ReleaseLock;
  recovery: RecoveryReport;
}

/** On the device, releases must be root-owned so the service user cannot rewrite the code it runs. */
export function requireRootOnDevice(ctx: Context, command: string): void {
  if (isDeviceRoot(ctx.layout) && process.getuid?.() !== 0) {
    throw new ReleaseError(`${command} must run as root on the device`, ExitCode.failed, 'run it with sudo, or use --root DIR for a sandbox');
  }
}

/**
 * Every mutating command: take the one lock, repair what a crash left behind, run, release.
 * The lock is released on every path out, including errors.
 */
export async function withMutation<T>(
  ctx: Context,
  purpose: string,
  lockOptions: LockOptions,
  body: (scope: MutationScope) => Promise<T>,
): Promise<T> {
  requireRootOnDevice(ctx, purpose.split(' ')[0]!);
  return withReleaseLock(ctx, purpose, lockOptions, async (lock) => {
    killPoint('lock-acquired', ctx.env);
    const recovery = await recover(ctx, null);
    killPoint('recovered', ctx.env);
    ctx.interrupt.safePoint('recovery');
    return body({ lock, recovery });
  });
}

type LockOptions = number | undefined | { waitSeconds?: number; force?: boolean };

/**
 * Run `body` holding the one release lock, without recovery: for `init`, which changes the unit
 * folder and the modes of folders an install uses, but never releases a crash may have left.
 */
export async function withReleaseLock<T>(ctx: Context, purpose: string, lockOptions: LockOptions, body: (lock: ReleaseLock) => Promise<T>): Promise<T> {
  const { waitSeconds, force } = typeof lockOptions === 'object' ? lockOptions : { waitSeconds: lockOptions, force: false };
  const lock = await acquireLock(ctx.layout.lockFile, { purpose, waitSeconds, force });
  // From here a Ctrl-C waits for a safe point, and the lock is released before the CLI stops.
  const unguard = ctx.interrupt.guard(() => lock.release());
  try {
    return await body(lock);
  } finally {
    unguard();
    lock.release();
  }
}
