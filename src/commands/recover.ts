/**
 * `release recover`: the crash repair on demand or at boot; restarts units if it changed what runs.
 * Never restarts units at boot: they are ordered after the check unit and start anyway.
 */

import type { Context } from '../core/context.js';
import { ExitCode } from '../core/exit-codes.js';
import { DeployJournal } from '../core/state/journal.js';
import { withMutation } from '../core/mutation/mutation.js';
import { recoveryChangedSomething, restartAfterRepair, type RecoveryReport } from '../core/mutation/recovery.js';

export interface RecoverOptions {
  /** At boot the units are ordered after us; restarting them from here would deadlock. */
  boot?: boolean;
  waitSeconds?: number;
  /** Take over a release lock left by another host or boot. */
  force?: boolean;
}

export interface RecoverResult {
  command: 'recover';
  report: RecoveryReport;
  changed: boolean;
  restarted: string[];
  exitCode: number;
}

function summary(r: RecoveryReport): string {
  const parts = [
    r.interrupted.length && `${r.interrupted.length} interrupted deploy(s) closed`,
    r.stagingRemoved && `${r.stagingRemoved} staging folder(s) removed`,
    r.incompleteRemoved.length && `incomplete ${r.incompleteRemoved.join(', ')} removed`,
    r.revertedTo && `reverted to ${r.revertedTo}`,
    r.unitsRepaired && 'units re-applied',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'nothing to repair';
}

/**
 * `smolotchi release recover`: the repair every mutating command runs first, on demand or at
 * boot. Outside boot, when it changed what runs, the units are restarted.
 */
export async function recover(options: RecoverOptions, ctx: Context): Promise<RecoverResult> {
  return withMutation(ctx, 'recover', { waitSeconds: options.waitSeconds, force: options.force }, async ({ recovery }) => {
    const changed = recoveryChangedSomething(recovery);
    const restarted: string[] = [];
    if (!changed) return { command: 'recover' as const, report: recovery, changed, restarted, exitCode: ExitCode.ok };
    const journal = DeployJournal.begin(ctx, 'recover', recovery.current, recovery.current);
    try {
      if (!options.boot) restarted.push(...(await restartAfterRepair(ctx, recovery, journal)));
      journal.finish('succeeded', summary(recovery));
      return { command: 'recover' as const, report: recovery, changed, restarted, exitCode: ExitCode.ok };
    } catch (err) {
      journal.finish('failed', (err as Error).message);
      throw err;
    }
  });
}
