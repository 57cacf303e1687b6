/**
 * The app-data step of a switch: snapshot what is left; restore on the way back or on request.
 * Never lets old code start on data a failed release migrated: its snapshot goes back first.
 */

import { readInstalledUnits, TOOL_UNIT, type RenderedUnits } from '../units/units.js';
import { restartByGroups } from '../units/restart-groups.js';
import type { Context } from '../context.js';
import { appDatabases, restoreDb, snapshotOfDeploy, takeSnapshot, type Snapshot } from './data-snapshots.js';
import { exists } from '../fsutil.js';
import type { DeployJournal } from '../state/journal.js';
import { killPoint } from '../killpoint.js';
import { NothingChangedError } from '../errors.js';

/**
 * App data around a switch: with the app's units stopped for the instant it takes, the data of
 * the release being left is snapshotted (and, for `rollback --restore-data`, the target's own
 * snapshot written back); when the new release fails its gate, its deploy's snapshot is written
 * back before the old release starts again, so old code never runs on a schema it does not know.
 */

export interface DataOutcome {
  /** The snapshot this deploy took of the data it left (deploy id = folder name). */
  snapshot: { deployId: number; takenAt: string; databases: Array<{ path: string; schemaVersion: number }> } | null;
  /** What was written back, and from which snapshot. */
  restored: { deployId: number; fromVersion: string | null; takenAt: string; databases: Array<{ path: string; schemaVersion: number }> } | null;
  /** Why a restore did not happen (the release switched anyway: the code must go back). */
  restoreFailure: string | null;
}

/** Runs after the new units are rendered and before any is written: the data step of a switch. */
export type BeforeSwitch = () => Promise<void>;

export const emptyDataOutcome = (): DataOutcome => ({ snapshot: null, restored: null, restoreFailure: null });

const summary = (s: Snapshot) => ({ deployId: s.deployId, takenAt: s.takenAt, databases: s.databases.map((d) => ({ path: d.path, schemaVersion: d.schemaVersion })) });

/** Our units now installed, the tool's own check aside: what writes the app's data. */
async function installedAppUnits(ctx: Context): Promise<string[]> {
  const files = await readInstalledUnits(ctx.layout.unitDir);
  return files.map((f) => f.relPath).filter((p) => !p.includes('/') && p !== TOOL_UNIT);
}

async function stopAppUnits(ctx: Context, journal: DeployJournal): Promise<string[]> {
  const units = await installedAppUnits(ctx);
  if (units.length > 0) {
    journal.step('stop-for-data');
    await ctx.services.stop(units);
  }
  return units;
}

async function anyDatabase(ctx: Context): Promise<boolean> {
  for (const db of appDatabases(ctx)) if (await exists(db.file)) return true;
  return false;
}

/** Write every database of `s` back (units already stopped) and record which deploy did it. */
async function writeBack(ctx: Context, s: Snapshot, byDeploy: number, point: string): Promise<void> {
  for (const db of s.databases) await restoreDb(ctx, s, db);
  killPoint(point, ctx.env);
  ctx.history().markSnapshotRestored(s.deployId, byDeploy);
}

async function restoreAll(ctx: Context, s: Snapshot, journal: DeployJournal): Promise<DataOutcome['restored']> {
  journal.step('restore-data');
  await writeBack(ctx, s, journal.id, 'data-restored');
  return { ...summary(s), fromVersion: s.fromVersion };
}

/**
 * The data step of a deploy's switch: snapshot what `from` leaves (and restore `restore`, the
 * target's own snapshot, when asked). A failure puts the stopped units back and changes nothing.
 */
export function snapshotOnLeave(ctx: Context, journal: DeployJournal, plan: { from: string | null; to: string; restore: Snapshot | null }, out: DataOutcome): BeforeSwitch {
  return async () => {
    if (!ctx.settings.dataSnapshots || !(await anyDatabase(ctx))) return;
    const stopped = await stopAppUnits(ctx, journal);
    let taken: Snapshot | null = null;
    try {
      journal.step('snapshot-data');
      taken = await takeSnapshot(ctx, { id: journal.id, from: plan.from, to: plan.to });
      killPoint('data-snapshotted', ctx.env);
      if (taken) {
        ctx.history().recordSnapshot({ deployId: journal.id, fromVersion: plan.from, toVersion: plan.to, takenAt: taken.takenAt, databases: taken.databases });
        out.snapshot = summary(taken);
      }
      if (plan.restore) out.restored = await restoreAll(ctx, plan.restore, journal);
    } catch (err) {
      // A half-done restore is undone from the snapshot just taken; then the old release runs on.
      if (plan.restore && taken) await restoreAll(ctx, taken, journal).catch(() => undefined);
      for (const unit of stopped) await ctx.services.start(unit).catch(() => undefined);
      throw new NothingChangedError(`could not ${plan.restore ? 'restore' : 'snapshot'} the app's data: ${(err as Error).message}; nothing was switched`, err);
    }
  };
}

/**
 * The data step of the way back after a failed gate: the failed release ran for seconds, so the
 * data it may have migrated goes back to the deploy's snapshot. A failed restore does not stop
 * the code from going back; the outcome says so.
 */
export function restoreOnReturn(ctx: Context, journal: DeployJournal, snapshot: Snapshot | null, out: DataOutcome): BeforeSwitch {
  return async () => {
    if (!snapshot) return;
    try {
      await stopAppUnits(ctx, journal);
      out.restored = await restoreAll(ctx, snapshot, journal);
      ctx.log.info(`restored the app's data from before the switch: ${snapshot.databases.map((d) => `${d.path} (schema ${d.schemaVersion})`).join(', ')}`);
    } catch (err) {
      out.restoreFailure = (err as Error).message;
      ctx.log.warn(`could not restore the app's data (${out.restoreFailure}); the old release runs on the data as the failed one left it`);
    }
  };
}

/**
 * `rollback --restore-data --to <current>`: the code stays, its data goes back to the snapshot
 * taken when it was last left. The live data is
 * snapshotted first, so running it again undoes it. The units are stopped for it and restarted.
 */
export async function restoreInPlace(ctx: Context, journal: DeployJournal, current: string, snapshot: Snapshot, units: RenderedUnits): Promise<DataOutcome> {
  const out = emptyDataOutcome();
  await snapshotOnLeave(ctx, journal, { from: current, to: current, restore: snapshot }, out)();
  journal.step('restart');
  await restartByGroups(ctx, units);
  return out;
}

/** A unit that is running or on its way (not one merely waiting in the boot transaction). */
const RUNNING = new Set(['active', 'activating', 'deactivating', 'reloading', 'refreshing']);

/**
 * Crash recovery undoing deploy `deployId`'s switch: the release it switched to may have run, and
 * migrated the app's data, before the crash; its snapshot goes back before the old release starts
 * again (what the automatic rollback does too). Only running units are stopped: at boot they wait
 * for the check unit, and a stop would cancel their start. Writing the same snapshot twice gives
 * the same files, so a crash in here is repaired by running it again. Returns what was restored.
 */
export async function restoreUndoneDeploy(ctx: Context, deployId: number): Promise<Snapshot | null> {
  const snapshot = await snapshotOfDeploy(ctx, deployId);
  if (!snapshot) return null;
  const units = await installedAppUnits(ctx);
  const running = units.length > 0 ? (await ctx.services.showAll(units)).filter((u) => RUNNING.has(u.activeState)).map((u) => u.unit) : [];
  if (running.length > 0) await ctx.services.stop(running);
  await writeBack(ctx, snapshot, deployId, 'recovery-data-restored');
  return snapshot;
}
