import type { Context } from './context.js';
import { ReleaseError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { isDeviceRoot } from './layout.js';
import { killPoint } from './killpoint.js';
import { acquireLock, type ReleaseLock } from './lock.js';
import { recover, type RecoveryReport } from './recovery.js';

export interface MutationScope {
  lock: ReleaseLock;
  recovery: RecoveryReport;
}

/**
 * Every mutating command: take the one lock, repair what a crash left behind, run, release.
 * The lock is released on every path out, including errors.
 */
export async function withMutation<T>(
  ctx: Context,
  purpose: string,
  waitSeconds: number | undefined,
  body: (scope: MutationScope) => Promise<T>,
): Promise<T> {
  // On the device, releases must be root-owned so the service user cannot rewrite the code it runs.
  if (isDeviceRoot(ctx.layout) && process.getuid?.() !== 0) {
    throw new ReleaseError(`${purpose.split(' ')[0]} must run as root on the device`, ExitCode.failed, 'run it with sudo, or use --root DIR for a sandbox');
  }
  const lock = await acquireLock(ctx.layout.lockFile, { purpose, waitSeconds });
  // From here a Ctrl-C waits for a safe point, and the lock is released before the CLI stops.
  const unguard = ctx.interrupt.guard(() => lock.release());
  try {
    killPoint('lock-acquired', ctx.env);
    const recovery = await recover(ctx, null);
    killPoint('recovered', ctx.env);
    ctx.interrupt.safePoint('recovery');
    return await body({ lock, recovery });
  } finally {
    unguard();
    lock.release();
  }
}
