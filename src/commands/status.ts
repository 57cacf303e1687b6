import { renderFor } from '../core/activate.js';
import type { Context } from '../core/context.js';
import { ExitCode } from '../core/exit-codes.js';
import { DEGRADED_KEY, historyReadable, type DeployRow } from '../core/history.js';
import { readLock, type LockInfo } from '../core/lock.js';
import { isSameLiveProcess } from '../core/proc.js';
import { readCurrent } from '../core/switch.js';
import { releaseFacts } from '../core/targets.js';
import { diffUnits, readInstalledUnits } from '../core/units.js';

export interface StatusResult {
  command: 'status';
  current: string | null;
  currentComplete: boolean;
  lastGood: string | null;
  rollbackTarget: string | null;
  bad: string[];
  degraded: boolean;
  degradedReason: string | null;
  lastDeploy: Pick<DeployRow, 'id' | 'kind' | 'status' | 'fromVersion' | 'toVersion' | 'error' | 'startedAt' | 'finishedAt'> | null;
  drift: boolean;
  driftFiles: string[];
  lock: (LockInfo & { alive: boolean }) | null;
  historyAvailable: boolean;
  exitCode: number;
}

/** Read-only overview; exits 6 while degraded so monitoring can alert on it. */
export async function status(_options: object, ctx: Context): Promise<StatusResult> {
  const store = ctx.readHistory();
  const current = await readCurrent(ctx.layout);
  const facts = await releaseFacts(ctx, store, current);
  const currentComplete = facts.releases.some((r) => r.version === current && r.stamp);
  let drift = false;
  let driftFiles: string[] = [];
  if (current && currentComplete) {
    const diff = diffUnits(await renderFor(ctx, current), await readInstalledUnits(ctx.layout.unitDir));
    drift = diff.drift;
    driftFiles = [...diff.added, ...diff.changed, ...diff.removed];
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
    lock: holder && { ...holder, alive: isSameLiveProcess(holder.pid, holder.startTime, holder.bootId) },
    historyAvailable: historyReadable(store),
    exitCode: degradedReason !== null ? ExitCode.degraded : ExitCode.ok,
  };
}
