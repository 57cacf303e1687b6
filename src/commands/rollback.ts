/**
 * `release rollback`: back to the last good release (or --to), through the same switch and gate.
 * Never fetches or builds: a rollback target must already be complete on disk.
 */

import type { Context } from '../core/context.js';
import { NotFoundError, ReleaseError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import type { GateResult } from '../core/activate/health.js';
import { DEGRADED_KEY } from '../core/state/history.js';
import { failDeploy } from '../core/mutation/disk-full.js';
import { DeployJournal } from '../core/state/journal.js';
import { killPoint } from '../core/killpoint.js';
import { withMutation } from '../core/mutation/mutation.js';
import { completeRelease } from '../core/state/releases.js';
import { readCurrent } from '../core/state/switch.js';
import { releaseFacts } from '../core/activate/targets.js';
import { parseVersion } from '../core/version.js';
import { switchVerified } from '../core/activate/verified-switch.js';
import type { DataComparison } from '../core/data/data-compare.js';
import { snapshotLeaving, type Snapshot } from '../core/data/data-snapshots.js';
import { restoreInPlace, type DataOutcome } from '../core/data/data-switch.js';
import { renderFor } from '../core/activate/activate.js';

export interface RollbackOptions {
  to?: string;
  dryRun?: boolean;
  waitSeconds?: number;
  /** Write back the app data snapshotted when the target was last left. */
  restoreData?: boolean;
}

export interface RollbackResult {
  command: 'rollback';
  status: 'rolled-back' | 'reverted' | 'degraded' | 'dry-run';
  from: string | null;
  to: string;
  deployId: number | null;
  gate: GateResult | null;
  failure: string | null;
  /** Whose fault a failure was: only 'release' marks it bad. */
  faultOf: 'release' | 'environment' | null;
  plan: string[];
  /** The app data: the snapshot taken of what is left, and what was written back. */
  data: DataOutcome | null;
  /** The live data against the target's snapshot (schema versions, rows a restore drops). */
  dataComparison: DataComparison | null;
  exitCode: number;
}

/** The target's snapshot and how the live data compares; with --restore-data one must exist. */
async function dataPlan(ctx: Context, to: string, restore: boolean | undefined): Promise<{ snapshot: Snapshot | null; comparison: DataComparison | null }> {
  const snapshot = await snapshotLeaving(ctx, to);
  if (!snapshot) {
    if (restore) throw new NotFoundError(`no snapshot of the app's data was taken when ${to} was last left`, 'rollback without --restore-data switches the code only');
    return { snapshot: null, comparison: null };
  }
  // Loaded only when there is a snapshot to compare with: most rollbacks have none.
  const { age, compareWithSnapshot, describeNewer } = await import('../core/data/data-compare.js');
  const comparison = await compareWithSnapshot(ctx, snapshot);
  const when = `${snapshot.takenAt} (${age(snapshot.takenAt)} ago)`;
  if (restore) {
    ctx.log.warn(`restoring the app's data of ${to} from ${when}: ${describeNewer(comparison)}`);
  } else if (comparison.schemaDiffers) {
    const schemas = comparison.databases.map((d) => `${d.path} schema ${d.liveSchema ?? '?'} (${to} last ran on ${d.snapshotSchema})`).join(', ');
    ctx.log.warn(`the app's data schema differs from what ${to} last ran on: ${schemas}; --restore-data restores the snapshot of ${when}; ${describeNewer(comparison)}`);
  }
  return { snapshot: restore ? snapshot : null, comparison };
}

/** Where to go: --to (must be complete on disk: rollback never fetches) or the last good release. */
async function chooseTarget(ctx: Context, to: string | undefined, current: string | null, restoreData?: boolean): Promise<string> {
  if (to !== undefined) {
    const version = parseVersion(to);
    if (!(await completeRelease(ctx.layout, version))) {
      throw new NotFoundError(`release ${version} is not installed on this device`, 'see `smolotchi release list`');
    }
    // While degraded, `--to <current>` is the documented repair: its units again, and its gate.
    // With --restore-data the current release is a target too: its data goes back, its code stays.
    if (version === current && !restoreData && ctx.readHistory()?.getState(DEGRADED_KEY) == null) {
      throw new ReleaseError(
        `release ${version} is already current`,
        ExitCode.failed,
        `nothing to do; \`smolotchi release install ${version} --force\` re-applies its units and re-runs its gate, and --restore-data puts back its data's last snapshot`,
      );
    }
    // Loaded only here: its git, manifest and venv checks are a large part of what a plain rollback would load.
    if (version !== current) await (await import('../core/verify/reverify.js')).reverifyBeforeSwitch(ctx, version);
    return version;
  }
  const facts = await releaseFacts(ctx, ctx.readHistory(), current);
  if (!facts.rollbackTarget) throw new NotFoundError('no earlier complete release to roll back to', 'see `smolotchi release list`');
  return facts.rollbackTarget;
}

/** `rollback` is DESIGN steps 1 and 8-12 against an already complete release: no fetch, no build. */
export async function rollback(options: RollbackOptions, ctx: Context): Promise<RollbackResult> {
  if (options.to !== undefined) parseVersion(options.to);
  if (options.dryRun) {
    const current = await readCurrent(ctx.layout);
    const to = await chooseTarget(ctx, options.to, current, options.restoreData);
    const { comparison } = await dataPlan(ctx, to, options.restoreData);
    const restore = options.restoreData ? [`stop the units, snapshot the app's data, write back ${to}'s snapshot of ${comparison?.takenAt}`] : [];
    const plan =
      to === current
        ? [...restore, 'restart the units (the code stays)']
        : [`render and write ${to}'s units`, ...restore, `switch current: ${current ?? '(none)'} -> ${to}`, 'restart units and run the health gate'];
    return { command: 'rollback', status: 'dry-run', from: current, to, deployId: null, gate: null, failure: null, plan, faultOf: null, data: null, dataComparison: comparison, exitCode: ExitCode.ok };
  }
  return withMutation(ctx, `rollback${options.to ? ` to ${options.to}` : ''}`, options.waitSeconds, async ({ lock }) => {
    const current = await readCurrent(ctx.layout);
    const to = await chooseTarget(ctx, options.to, current, options.restoreData);
    const { snapshot, comparison } = await dataPlan(ctx, to, options.restoreData);
    // Deferred: every path below journals a step (forced to disk) before it changes anything.
    const journal = DeployJournal.begin(ctx, 'rollback', current, to, { deferSync: true });
    if (to === current && snapshot) {
      const data = await restoreInPlace(ctx, journal, to, snapshot, await renderFor(ctx, to)).catch(failDeploy(ctx, journal));
      journal.finish('succeeded');
      return { command: 'rollback' as const, status: 'rolled-back' as const, from: current, to, deployId: journal.id, gate: null, failure: null, faultOf: null, plan: [], data, dataComparison: comparison, exitCode: ExitCode.ok };
    }
    ctx.log.info(to === current ? `re-applying ${to} (degraded)` : `rolling back ${current ?? '(none)'} -> ${to}`);
    // Re-applying the current release falls back, if it fails again, to the last good other one
    // (or to itself once more, never to nothing: that would remove the running units).
    const previous = to === current ? ((await releaseFacts(ctx, ctx.history(), current)).rollbackTarget ?? current) : current;
    // Only an activation that changed nothing throws (e.g. a full disk while staging units).
    const outcome = await switchVerified(ctx, { target: to, previous, journal, lock, restoreData: snapshot }).catch(failDeploy(ctx, journal));
    const base = { command: 'rollback' as const, from: current, to, deployId: journal.id, gate: outcome.gate, plan: [], data: outcome.data, dataComparison: comparison };
    if (outcome.status === 'switched') {
      journal.finish('succeeded');
      killPoint('rollback-finished', ctx.env);
      return { ...base, status: 'rolled-back' as const, failure: null, faultOf: null, exitCode: ExitCode.ok };
    }
    const degraded = outcome.status === 'degraded';
    return {
      ...base,
      status: degraded ? ('degraded' as const) : ('reverted' as const),
      failure: degraded ? `${outcome.failure}; going back failed: ${outcome.rollback?.failure}` : (outcome.failure ?? null),
      faultOf: outcome.faultOf ?? null,
      exitCode: degraded ? ExitCode.degraded : outcome.faultOf === 'environment' ? ExitCode.failed : ExitCode.rolledBack,
    };
  });
}
