/**
 * DESIGN steps 8-12: switch, run the gate, and on failure flip back once; degraded if that fails.
 * Never marks a release bad for a fault of the environment, and never flips back more than once.
 */

import { activate, applyUnits, deactivateAll, NO_UNITS, renderFor, type ActivationProgress } from './activate.js';
import type { Context } from '../context.js';
import { snapshotOfDeploy, type Snapshot } from '../data/data-snapshots.js';
import { emptyDataOutcome, restoreOnReturn, snapshotOnLeave, type BeforeSwitch, type DataOutcome } from '../data/data-switch.js';
import { EnvironmentFault, environmentFault } from './environment-fault.js';
import { describeFailure, healthGate, type GateFailure, type GateResult } from './health.js';
import { DEGRADED_KEY } from '../state/history.js';
import { DeployJournal } from '../state/journal.js';
import { killPoint } from '../killpoint.js';
import { NothingChangedError } from '../errors.js';
import { releaseDir } from '../layout.js';
import type { ReleaseLock } from '../state/lock.js';
import { flipCurrent, readCurrent, removeCurrent } from '../state/switch.js';

export interface SwitchOutcome {
  status: 'switched' | 'rolled-back' | 'degraded';
  target: string;
  previous: string | null;
  gate: GateResult;
  /** Why the target failed, when it did. */
  failure?: string;
  /** Whose fault the failure was: only 'release' marks the target bad. */
  faultOf?: 'release' | 'environment';
  rollback?: { to: string | null; ok: boolean; gate?: GateResult; failure?: string };
  /** The app data: the snapshot taken on leaving, and what was written back. */
  data: DataOutcome;
}

interface Attempt {
  gate: GateResult;
  /** Set when the environment, not the release, failed the attempt. */
  fault: EnvironmentFault | null;
  progress: ActivationProgress;
}

/**
 * Activate a release and run its gate. An exception is a failed gate, except a fault of the
 * environment (returned as such) and, for the first activation, a failure that changed nothing.
 */
async function activateAndGate(ctx: Context, version: string, journal: DeployJournal, lock: ReleaseLock, first: boolean, beforeSwitch: BeforeSwitch): Promise<Attempt> {
  const started = Date.now();
  const progress: ActivationProgress = { unitsTouched: false, flipped: false, restarted: false };
  const failed = (failure: GateFailure, fault: EnvironmentFault | null = null): Attempt => {
    ctx.progress.fail(); // the step it failed in is shown failed; the reason is the result's to say
    return { gate: { ok: false, failure, durationMs: Date.now() - started, checks: [] }, fault, progress };
  };
  const asFault = (fault: EnvironmentFault): Attempt => failed({ check: 'environment', reason: fault.message, journal: [] }, fault);
  let units: string[] = [];
  try {
    const act = await activate(ctx, version, journal, lock, beforeSwitch, progress);
    if (act.restartFailure) return failed(act.restartFailure);
    units = act.rendered.startOrder;
  } catch (err) {
    // A first activation that changed nothing (a full disk while staging units) is the caller's to report.
    if (first && err instanceof NothingChangedError) throw err;
    const fault = environmentFault(err);
    if (fault) return asFault(fault);
    return failed({ check: 'restart', reason: `activation failed: ${(err as Error).message}`, journal: [] });
  }
  // Deferred: the gate only asks; a power cut here leaves 'restart', which recovery treats alike.
  journal.step('health-gate', { deferSync: true });
  let gate: GateResult;
  try {
    gate = await healthGate(ctx, { version, releaseDir: releaseDir(ctx.layout, version), units });
  } catch (err) {
    // The gate only throws when it cannot ask (systemctl show failing): never the release's failure.
    return asFault(
      environmentFault(err) ??
        new EnvironmentFault(`the health gate could not run: ${(err as Error).message}`, 'check that systemd runs (`systemctl is-system-running`), then run the command again', err),
    );
  }
  if (gate.ok) ctx.progress.done();
  else ctx.progress.fail();
  killPoint(gate.ok ? 'gate-passed' : 'gate-failed', ctx.env);
  return { gate, fault: null, progress };
}

/**
 * An environment fault before anything restarted: put back what this attempt changed (the link,
 * the unit files) so the device is as it was. Best effort: what cannot be put back now (the same
 * fault) is what the next command's recovery re-applies; it is said, never hidden.
 */
async function undoUnrestarted(ctx: Context, previous: string | null, progress: ActivationProgress): Promise<void> {
  try {
    if (progress.flipped && (await readCurrent(ctx.layout)) !== previous) {
      if (previous === null) await removeCurrent(ctx.layout);
      else await flipCurrent(ctx.layout, previous);
    }
    if (progress.unitsTouched) await applyUnits(ctx, previous === null ? NO_UNITS : await renderFor(ctx, previous), null);
  } catch (err) {
    ctx.log.warn(`could not put everything back yet (${(err as Error).message}); the next command's recovery finishes it`);
  }
}

/**
 * DESIGN steps 8-12: switch to `target`, prove it healthy, and if it is not, put `previous` back
 * with the same gate. At most one automatic flip; if the way back fails too, stop: degraded.
 * Only a release that failed its own gate is marked bad. An environment fault before the restart
 * undoes the attempt and throws (exit 1); after the restart the way back runs as for a failed gate.
 * The caller finishes `journal` on success; every failure path finishes it here, except a first
 * activation that changed nothing (NothingChangedError, e.g. a full disk): the caller's to report.
 */
export async function switchVerified(
  ctx: Context,
  opts: { target: string; previous: string | null; journal: DeployJournal; lock: ReleaseLock; restoreData?: Snapshot | null },
): Promise<SwitchOutcome> {
  const { target, previous, journal, lock } = opts;
  const history = ctx.history();
  const data = emptyDataOutcome();
  const leaving = await readCurrent(ctx.layout);
  const enter = snapshotOnLeave(ctx, journal, { from: leaving, to: target, restore: opts.restoreData ?? null }, data);
  const { gate, fault, progress } = await activateAndGate(ctx, target, journal, lock, true, enter);
  if (gate.ok) {
    journal.step('mark', { deferSync: true }); // forced to disk with the mark itself
    history.setMark(target, 'good', null, journal.id);
    history.setState(DEGRADED_KEY, null);
    killPoint('marked', ctx.env);
    return { status: 'switched', target, previous, gate, data };
  }

  // A Ctrl-C also stops the systemctl calls and checks of the gate: never blame the release for it.
  ctx.interrupt.safePoint('health-gate');
  const failure = describeFailure(gate.failure!);
  if (fault && !progress.restarted) {
    await undoUnrestarted(ctx, previous, progress);
    journal.finish('failed', failure);
    throw fault;
  }
  // The data this deploy snapshotted goes back with the code (read from disk: the folder is the truth).
  const snapshot = data.snapshot ? await snapshotOfDeploy(ctx, journal.id) : null;
  const faultOf = fault ? 'environment' : 'release';
  if (fault) ctx.log.warn(`${target} was restarted, then the environment failed: ${failure}; going back, marking nothing bad`);
  // The release's own failure is said once, by the result.
  else history.setMark(target, 'bad', failure, journal.id);
  journal.step('auto-rollback');

  if (previous === null) {
    // Nothing was installed before: going back means removing what this deploy put in place.
    await deactivateAll(ctx, journal);
    await restoreOnReturn(ctx, journal, snapshot, data)();
    lock.reassert();
    journal.finish('rolled-back', failure);
    return { status: 'rolled-back', target, previous, gate, failure, faultOf, rollback: { to: null, ok: true }, data };
  }

  const way = DeployJournal.begin(ctx, 'auto-rollback', target, previous, { parentId: journal.id });
  const { gate: backGate } = await activateAndGate(ctx, previous, way, lock, false, restoreOnReturn(ctx, way, snapshot, data));
  if (backGate.ok) {
    history.setMark(previous, 'good', null, way.id);
    way.finish('succeeded');
    journal.finish('rolled-back', failure);
    return { status: 'rolled-back', target, previous, gate, failure, faultOf, rollback: { to: previous, ok: true, gate: backGate }, data };
  }
  const backFailure = describeFailure(backGate.failure!);
  const what = fault ? `${target} was stopped by the environment (${failure})` : `${target} failed its gate (${failure})`;
  const reason = `${what}; rollback to ${previous} failed too (${backFailure})`;
  history.setState(DEGRADED_KEY, reason);
  way.finish('degraded', backFailure);
  journal.finish('degraded', failure);
  return { status: 'degraded', target, previous, gate, failure, faultOf, rollback: { to: previous, ok: false, gate: backGate, failure: backFailure }, data };
}
