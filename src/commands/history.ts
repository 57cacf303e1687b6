/**
 * `release history`: the deploy rows and operator marks, newest first.
 * Read-only: never takes the lock, so it works while an install runs.
 */

import type { Context } from '../core/context.js';
import { UsageError } from '../core/errors.js';
import { historyReadable, type DeployRow, type MarkEvent } from '../core/state/history.js';

export interface HistoryOptions {
  limit?: number;
}

export interface HistoryResult {
  command: 'history';
  deploys: DeployRow[];
  /** Marks as they were set (gate, rebuild, operator), newest first, as many as --limit. */
  marks: MarkEvent[];
  /** False when there is no readable history (fresh device or unreadable file). */
  historyAvailable: boolean;
}

/** Read-only: never takes the lock, works during an install (WAL readers). */
export async function history(options: HistoryOptions, ctx: Context): Promise<HistoryResult> {
  const limit = options.limit ?? 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be a whole number from 1 to 10000');
  const store = ctx.readHistory();
  const deploys = store?.listDeploys(limit) ?? [];
  const marks = store?.markEvents(limit) ?? [];
  return { command: 'history', deploys, marks, historyAvailable: historyReadable(store) };
}
