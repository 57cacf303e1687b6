/**
 * `release prune`: removes releases beyond --keep through the trash, under the lock.
 * Never removes the current, the last good or the rollback target, and never deletes in place.
 */

import type { Context } from '../core/context.js';
import { ExitCode } from '../core/exit-codes.js';
import { removeViaTrash } from '../core/fsutil.js';
import { DeployJournal } from '../core/state/journal.js';
import { withMutation } from '../core/mutation/mutation.js';
import { restartAfterRepair } from '../core/mutation/recovery.js';
import { planPrune, type PrunePlan } from '../core/state/prune-plan.js';
import { readCurrent } from '../core/state/switch.js';
import { releaseFacts } from '../core/activate/targets.js';
import { killPoint } from '../core/killpoint.js';
import { listSnapshots, pruneSnapshots } from '../core/data/data-snapshots.js';

export interface PruneOptions {
  keep?: number;
  dryRun?: boolean;
  waitSeconds?: number;
}

export interface PruneResult {
  command: 'prune';
  keep: number;
  kept: string[];
  removed: string[];
  protected: PrunePlan['protectedReasons'];
  /** App data snapshots removed with them (deploy ids): only the newest of each kept release stays. */
  snapshotsRemoved: number[];
  /** The same word as install's and rollback's: 'dry-run' changed nothing. */
  status: 'pruned' | 'dry-run';
  exitCode: number;
}

async function plan(ctx: Context, keep: number): Promise<PrunePlan> {
  const current = await readCurrent(ctx.layout);
  const facts = await releaseFacts(ctx, ctx.readHistory(), current);
  return planPrune(facts.releases, { keep, current, lastGood: facts.lastGood, rollbackTarget: facts.rollbackTarget, bad: facts.bad });
}

/** Remove releases beyond `keep` (caller holds the lock). Each goes through the trash: never half-deleted in place. */
export async function pruneReleases(ctx: Context, keep: number, dryRun: boolean, journal?: DeployJournal): Promise<string[]> {
  const p = await plan(ctx, keep);
  if (dryRun) return p.remove;
  for (const version of p.remove) {
    journal?.step(`remove ${version}`);
    killPoint('prune-remove', ctx.env);
    await removeViaTrash(`${ctx.layout.releasesDir}/${version}`, ctx.layout.trashDir);
    killPoint('prune-removed', ctx.env);
  }
  const snapshots = await pruneSnapshots(ctx, p.keep);
  if (snapshots.length) ctx.log.info(`pruned app data snapshots ${snapshots.join(', ')}`);
  return p.remove;
}

export async function prune(options: PruneOptions, ctx: Context): Promise<PruneResult> {
  const keep = options.keep ?? ctx.settings.keep;
  if (options.dryRun) {
    const p = await plan(ctx, keep);
    const snapshotsRemoved = await pruneSnapshots(ctx, p.keep, true);
    return { command: 'prune', keep, kept: p.keep, removed: p.remove, protected: p.protectedReasons, snapshotsRemoved, status: 'dry-run', exitCode: ExitCode.ok };
  }
  return withMutation(ctx, 'prune', options.waitSeconds, async ({ recovery }) => {
    const current = await readCurrent(ctx.layout);
    const journal = DeployJournal.begin(ctx, 'prune', current, current);
    try {
      // Recovery may have gone back to the old release: its code must be what runs, not the unproven one's.
      await restartAfterRepair(ctx, recovery, journal);
      const p = await plan(ctx, keep);
      const before = (await listSnapshots(ctx)).map((x) => x.deployId);
      const removed = await pruneReleases(ctx, keep, false, journal);
      const left = new Set((await listSnapshots(ctx)).map((x) => x.deployId));
      const snapshotsRemoved = before.filter((id) => !left.has(id));
      journal.finish('succeeded');
      killPoint('prune-finished', ctx.env);
      return { command: 'prune' as const, keep, kept: p.keep, removed, protected: p.protectedReasons, snapshotsRemoved, status: 'pruned' as const, exitCode: ExitCode.ok };
    } catch (err) {
      journal.finish('failed', (err as Error).message);
      throw err;
    }
  });
}
