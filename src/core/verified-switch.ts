import { activate, deactivateAll } from './activate.js';
import type { Context } from './context.js';
import { describeFailure, healthGate, type GateFailure, type GateResult } from './health.js';
import { DEGRADED_KEY } from './history.js';
import { DeployJournal } from './journal.js';
import { killPoint } from './killpoint.js';
import { NothingChangedError } from './nothing-changed.js';
import { releaseDir } from './layout.js';
import type { ReleaseLock } from './lock.js';

export interface SwitchOutcome {
  status: 'switched' | 'rolled-back' | 'degraded';
  target: string;
  previous: string | null;
  gate: GateResult;
  /** Why the target failed, when it did. */
  failure?: string;
  rollback?: { to: string | null; ok: boolean; gate?: GateResult; failure?: string };
}

/**
 * Activate a release and run its gate; an exception while activating counts as a failed gate,
 * except, for the deploy's first activation, a failure that changed nothing: that is rethrown.
 */
async function activateAndGate(ctx: Context, version: string, journal: DeployJournal, lock: ReleaseLock, first = false): Promise<GateResult> {
  const started = Date.now();
  let failure: GateFailure | undefined;
  let units: string[] = [];
  try {
    const act = await activate(ctx, version, journal, lock);
    failure = act.restartFailure;
    units = act.rendered.startOrder;
  } catch (err) {
    if (first && err instanceof NothingChangedError) throw err;
    failure = { check: 'restart', reason: `activation failed: ${(err as Error).message}`, journal: [] };
  }
  if (failure) {
    ctx.progress.fail();
    return { ok: false, failure, durationMs: Date.now() - started, checks: [] };
  }
  journal.step('health-gate');
  const gate = await healthGate(ctx, { version, releaseDir: releaseDir(ctx.layout, version), units });
  if (gate.ok) ctx.progress.done();
  else ctx.progress.fail();
  killPoint(gate.ok ? 'gate-passed' : 'gate-failed', ctx.env);
  return gate;
}

/**
 * DESIGN steps 8-12: switch to `target`, prove it healthy, and if it is not, put `previous` back
 * with the same gate. At most one automatic flip; if the way back fails too, stop: degraded.
 * The caller finishes `journal` on success; every failure path finishes it here, except a first
 * activation that changed nothing (NothingChangedError, e.g. a full disk): the caller's to report.
 */
export async function switchVerified(
  ctx: Context,
  opts: { target: string; previous: string | null; journal: DeployJournal; lock: ReleaseLock },
): Promise<SwitchOutcome> {
  const { target, previous, journal, lock } = opts;
  const history = ctx.history();
  const gate = await activateAndGate(ctx, target, journal, lock, true);
  if (gate.ok) {
    journal.step('mark');
    history.setMark(target, 'good', null, journal.id);
    history.setState(DEGRADED_KEY, null);
    killPoint('marked', ctx.env);
    return { status: 'switched', target, previous, gate };
  }

  // A Ctrl-C also stops the systemctl calls and checks of the gate: never blame the release for it.
  ctx.interrupt.safePoint('health-gate');
  const failure = describeFailure(gate.failure!);
  history.setMark(target, 'bad', failure, journal.id);
  journal.step('auto-rollback');

  if (previous === null) {
    // Nothing was installed before: going back means removing what this deploy put in place.
    await deactivateAll(ctx, journal);
    lock.reassert();
    journal.finish('rolled-back', failure);
    return { status: 'rolled-back', target, previous, gate, failure, rollback: { to: null, ok: true } };
  }

  const back = DeployJournal.begin(ctx, 'auto-rollback', target, previous, { parentId: journal.id });
  const backGate = await activateAndGate(ctx, previous, back, lock);
  if (backGate.ok) {
    history.setMark(previous, 'good', null, back.id);
    back.finish('succeeded');
    journal.finish('rolled-back', failure);
    return { status: 'rolled-back', target, previous, gate, failure, rollback: { to: previous, ok: true, gate: backGate } };
  }
  const backFailure = describeFailure(backGate.failure!);
  const reason = `${target} failed its gate (${failure}); rollback to ${previous} failed too (${backFailure})`;
  history.setState(DEGRADED_KEY, reason);
  back.finish('degraded', backFailure);
  journal.finish('degraded', failure);
  return { status: 'degraded', target, previous, gate, failure, rollback: { to: previous, ok: false, gate: backGate, failure: backFailure } };
}
