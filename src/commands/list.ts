/**
 * `release list`: the releases on disk, newest first, with current, previous and their marks.
 * Read-only: never takes the lock or changes anything.
 */

import type { Context } from '../core/context.js';
import type { ReleaseMark } from '../core/state/history.js';
import { readCurrent } from '../core/state/switch.js';
import { releaseFacts, requireInstalled } from '../core/activate/targets.js';

export interface ReleaseEntry {
  version: string;
  complete: boolean;
  current: boolean;
  lastGood: boolean;
  rollbackTarget: boolean;
  bad: boolean;
  badReason: string | null;
  /** The release's mark and who set it (null: never marked). */
  mark: ReleaseMark | null;
  installedAt: string | null;
  source: string | null;
  commit: string | null;
  sha256: string | null;
}

export interface ListResult {
  command: 'list';
  releases: ReleaseEntry[];
}

/** Releases on disk, newest version first. Read-only. */
export async function list(_options: object, ctx: Context): Promise<ListResult> {
  const store = ctx.readHistory();
  const current = await readCurrent(ctx.layout);
  const facts = await releaseFacts(ctx, store, current);
  requireInstalled(ctx, facts);
  const marks: Map<string, ReleaseMark> = store?.marks() ?? new Map();
  return {
    command: 'list',
    releases: facts.releases.map((r) => ({
      version: r.version,
      complete: r.stamp !== null,
      current: r.version === current,
      lastGood: r.version === facts.lastGood,
      rollbackTarget: r.version === facts.rollbackTarget,
      bad: facts.bad.has(r.version),
      badReason: facts.bad.has(r.version) ? (marks.get(r.version)?.reason ?? null) : null,
      mark: marks.get(r.version) ?? null,
      installedAt: r.stamp?.completedAt ?? null,
      source: r.stamp?.source ?? null,
      commit: r.stamp?.commit ?? null,
      sha256: r.stamp?.sha256 ?? null,
    })),
  };
}
