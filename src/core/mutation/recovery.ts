/**
 * Runs first in every mutating command: finishes or undoes what a crash left, so I1-I7 hold.
 * Never runs without the lock, and never keeps an unproven release that a crash left current.
 */

import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { removeStaleGitLocks } from '../../adapters/git-locks.js';
import { applyUnits, deactivateAll, renderFor } from '../activate/activate.js';
import type { Context } from '../context.js';
import { IntegrityError } from '../errors.js';
import { emptyDir, removeViaTrash } from '../fsutil.js';
import type { DeployJournal } from '../state/journal.js';
import { scanReleases } from '../state/releases.js';
import { killPoint } from '../killpoint.js';
import { flipCurrent, readCurrent } from '../state/switch.js';
import { diffUnits, readInstalledUnits } from '../units/units.js';
import { restartByGroups } from '../units/restart-groups.js';
import { restoreUndoneDeploy } from '../data/data-switch.js';

export interface RecoveryReport {
  interrupted: { id: number; kind: string; step: string | null }[];
  stagingRemoved: number;
  trashRemoved: number;
  incompleteRemoved: string[];
  /** Set when an unverified release was current after a crash and we went back to the previous one. */
  revertedTo: string | null;
  /** The app's databases put back from the undone deploy's snapshot (device paths), if it had one. */
  dataRestored: string[];
  unitsRepaired: boolean;
  current: string | null;
}

/** Steps after which `current` may already name the new, not yet proven release. */
const SWITCHED_STEPS = new Set(['flip', 'restart', 'health-gate', 'auto-rollback', 'deactivate', 'mark', 'prune']);

/** The unit set of "no release": what an undone first install leaves. */

/** Recovery changed what should run (went back, or rewrote units): the services need a restart. */
export function needsRestart(r: RecoveryReport): boolean {
  return (r.revertedTo !== null || r.unitsRepaired) && r.current !== null;
}

/**
 * Restart the current release's units after a repair, outside boot (at boot they start after the
 * check unit anyway). Returns the units restarted.
 */
export async function restartAfterRepair(ctx: Context, r: RecoveryReport, journal: DeployJournal): Promise<string[]> {
  if (!needsRestart(r)) return [];
  journal.step('restart');
  return restartByGroups(ctx, await renderFor(ctx, r.current));
}

export function recoveryChangedSomething(r: RecoveryReport): boolean {
  return r.interrupted.length > 0 || r.stagingRemoved > 0 || r.incompleteRemoved.length > 0 || r.revertedTo !== null || r.unitsRepaired;
}

/**
 * Runs first in every mutating command, under the lock: whatever a crash left half-done is
 * finished or undone, so I1-I7 hold before anything new starts.
 */
export async function recover(ctx: Context, journal: DeployJournal | null): Promise<RecoveryReport> {
  const { layout, log } = ctx;
  const history = ctx.history();
  const report: RecoveryReport = {
    interrupted: [],
    stagingRemoved: 0,
    trashRemoved: 0,
    incompleteRemoved: [],
    revertedTo: null,
    dataRestored: [],
    unitsRepaired: false,
    current: null,
  };

  // I4: staging and trash never survive the next command. First, because it frees space.
  report.stagingRemoved = await emptyDir(layout.stagingDir);
  report.trashRemoved = await emptyDir(layout.trashDir);
  await removeTempLinks(layout.optDir);
  const gitLocks = await removeStaleGitLocks(layout.mirrorDir);
  if (gitLocks.length) log.warn(`removed stale git lock file(s) a killed fetch left in the mirror: ${gitLocks.join(', ')}`);
  killPoint('recovery-cleaned', ctx.env);

  // We hold the lock, so any other row still 'running' belongs to a dead process.
  const stale = history.runningDeploys().filter((d) => d.id !== journal?.id);
  let current = await readCurrent(layout);
  const releases = await scanReleases(layout);
  const complete = new Set(releases.filter((r) => r.stamp).map((r) => r.version));

  // An interrupted deploy that had already switched to an unproven release: go back (like an
  // uncommitted A/B update); with nothing before it, no release is current. A release that passed
  // its gate before the crash stays. Done before the rows are closed, so a crash in between
  // repeats this decision instead of losing it.
  const marks = history.marks();
  for (const d of [...stale].reverse()) {
    if ((d.kind !== 'install' && d.kind !== 'rollback') || !SWITCHED_STEPS.has(d.step ?? '')) continue;
    if (current !== d.toVersion || marks.get(d.toVersion ?? '')?.state === 'good') continue;
    if (d.fromVersion && complete.has(d.fromVersion)) {
      log.warn(`release ${current} was switched to but never proven healthy; going back to ${d.fromVersion}`);
      await restoreData(ctx, d.id, current, report);
      await flipCurrent(layout, d.fromVersion);
      report.revertedTo = current = d.fromVersion;
    } else if (d.fromVersion === null) {
      log.warn(`release ${current} was the first one installed and never proven healthy; removing its units and current`);
      await restoreData(ctx, d.id, current, report);
      await deactivateAll(ctx, journal);
      report.unitsRepaired = true;
      current = null;
    }
    break;
  }
  killPoint('recovery-reverted', ctx.env);

  // I5: closed only now that the state they describe is settled.
  for (const d of stale) {
    history.finishDeploy(d.id, 'interrupted', `interrupted at step ${d.step ?? 'start'}`);
    report.interrupted.push({ id: d.id, kind: d.kind, step: d.step });
  }
  if (stale.length) log.warn(`marked ${stale.length} interrupted deploy(s): ${stale.map((d) => `#${d.id} ${d.kind} at ${d.step}`).join(', ')}`);
  killPoint('recovery-rows-closed', ctx.env);

  // I1: a release without a valid stamp is never a target, and is cleaned (never the current one).
  for (const r of releases) {
    if (r.stamp || r.version === current) continue;
    await removeViaTrash(r.dir, layout.trashDir);
    report.incompleteRemoved.push(r.version);
  }
  if (report.incompleteRemoved.length) log.warn(`removed incomplete release folder(s): ${report.incompleteRemoved.join(', ')}`);

  // I3: installed units match what the current release renders.
  // A current release installed before today's unit policy may fail it: say so and leave its units,
  // so that installing or rolling back to a release that passes stays possible.
  const rendered = current && complete.has(current) ? await renderFor(ctx, current).catch((err: unknown) => policyRefusal(err, current, log)) : null;
  if (current && rendered) {
    const diff = diffUnits(rendered, await readInstalledUnits(layout.unitDir));
    if (diff.drift) {
      log.warn(`unit files differ from what ${current} renders (${[...diff.added, ...diff.changed, ...diff.removed].join(', ')}); re-applying`);
      await applyUnits(ctx, rendered, journal);
      report.unitsRepaired = true;
    }
  }
  report.current = current;
  return report;
}

/**
 * The undone release may have migrated the app's data in the seconds it ran: its deploy's snapshot
 * goes back before anything else starts. Before the flip, so a crash in between repeats it.
 */
async function restoreData(ctx: Context, deployId: number, undone: string | null, report: RecoveryReport): Promise<void> {
  const restored = await restoreUndoneDeploy(ctx, deployId);
  if (!restored) return;
  report.dataRestored = restored.databases.map((db) => db.path);
  ctx.log.warn(`put the app's data back as it was before ${undone ?? 'the undone release'} ran: ${report.dataRestored.join(', ')}`);
}

function policyRefusal(err: unknown, current: string, log: Context['log']): null {
  if (!(err instanceof IntegrityError)) throw err;
  log.warn(`the units of ${current} are refused by the unit policy (${err.message}); left as installed: install or roll back to a release that passes`);
  return null;
}

/** Leftover temp symlinks from a flip interrupted between symlink() and rename(). Listed synchronously: a few names, every command. */
async function removeTempLinks(optDir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync(optDir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith('.current.')) await rm(path.join(optDir, n), { force: true });
}

