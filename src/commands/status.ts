/**
 * `release status`: current, previous good, lock holder, last deploy, degraded state, unit drift.
 * Read-only: never takes the lock; degraded is exit 6 in its result, for the CLI to return.
 */

import { renderFor } from '../core/activate/activate.js';
import type { Context } from '../core/context.js';
import { IntegrityError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { DEGRADED_KEY, historyReadable, type DeployRow, type ReleaseMark } from '../core/state/history.js';
import { readLock, type LockInfo } from '../core/state/lock.js';
import { isSameLiveProcess } from '../core/state/proc.js';
import { readCurrent } from '../core/state/switch.js';
import { releaseFacts, requireInstalled } from '../core/activate/targets.js';
import { diffUnits, readInstalledUnits } from '../core/units/units.js';
import { byCodeUnits } from '../core/version.js';

export interface StatusResult {
  command: 'status';
  current: string | null;
  currentComplete: boolean;
  lastGood: string | null;
  rollbackTarget: string | null;
  bad: string[];
  /** The bad marks with their reason and who set them (gate or operator). */
  badMarks: ReleaseMark[];
  degraded: boolean;
  degradedReason: string | null;
  lastDeploy: Pick<DeployRow, 'id' | 'kind' | 'status' | 'fromVersion' | 'toVersion' | 'error' | 'startedAt' | 'finishedAt'> | null;
  drift: boolean;
  driftFiles: string[];
  /** Per unit of the current release: the sandboxing its own unit files turned off (the privileges are the tool's). */
  loosened: Record<string, string[]>;
  lock: (LockInfo & { alive: boolean }) | null;
  historyAvailable: boolean;
  exitCode: number;
}

/** Read-only overview; exits 6 while degraded so monitoring can alert on it. */
export async function status(_options: object, ctx: Context): Promise<StatusResult> {
  const store = ctx.readHistory();
  const current = await readCurrent(ctx.layout);
  const facts = await releaseFacts(ctx, store, current);
  requireInstalled(ctx, facts);
  const currentComplete = facts.releases.some((r) => r.version === current && r.stamp);
  let drift = false;
  let driftFiles: string[] = [];
  let loosened: Record<string, string[]> = {};
  if (current && currentComplete) {
    // Installed by an older tool, the current release's units may fail today's policy: say so, still answer.
    const rendered = await renderFor(ctx, current).catch((err: unknown) => {
      if (!(err instanceof IntegrityError)) throw err;
      return err;
    });
    if (rendered instanceof IntegrityError) {
      drift = true;
      driftFiles = [`(refused by the unit policy: ${rendered.message})`];
    } else {
      loosened = rendered.loosened;
      const diff = diffUnits(rendered, await readInstalledUnits(ctx.layout.unitDir));
      drift = diff.drift;
      driftFiles = [...diff.added, ...diff.changed, ...diff.removed];
    }
  }
  // The last deploy a user started (an automatic rollback is part of its parent's story).
  const last = store?.listDeploys(20).find((d) => d.parentId === null) ?? null;
  const degradedReason = store?.getState(DEGRADED_KEY) ?? null;
  const holder = readLock(ctx.layout.lockFile);
  return {
    command: 'status',
    current,
    currentComplete,
    lastGood: facts.lastGood,
    rollbackTarget: facts.rollbackTarget,
    bad: [...facts.bad].sort(),
    badMarks: [...(store?.marks().values() ?? [])].filter((m) => m.state === 'bad').sort((a, b) => byCodeUnits(a.version, b.version)),
    degraded: degradedReason !== null,
    degradedReason,
    lastDeploy: last && {
      id: last.id,
      kind: last.kind,
      status: last.status,
      fromVersion: last.fromVersion,
      toVersion: last.toVersion,
      error: last.error,
      startedAt: last.startedAt,
      finishedAt: last.finishedAt,
    },
    drift,
    driftFiles,
    loosened,
    lock: holder && { ...holder, alive: isSameLiveProcess(holder.pid, holder.startTime, holder.bootId) },
    historyAvailable: historyReadable(store),
    exitCode: degradedReason !== null ? ExitCode.degraded : ExitCode.ok,
  };
}
