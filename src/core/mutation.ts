import type { Context } from './context.js';
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
  const lock = await acquireLock(ctx.layout.lockFile, { purpose, waitSeconds });
  try {
    const recovery = await recover(ctx, null);
    return await body({ lock, recovery });
  } finally {
    lock.release();
  }
}
