/**
 * Which releases prune keeps and removes, and why each kept one is protected; pure.
 * Never removes the current, the last good or the rollback target, whatever the count says.
 */

import type { ReleaseOnDisk } from './releases.js';
import { byCodeUnits } from '../version.js';

export interface PrunePlan {
  keep: string[];
  remove: string[];
  /** Why each kept release was protected beyond the count, for the user. */
  protectedReasons: Record<string, string>;
}

/**
 * Keep `keep` complete releases, newest first, and never the current one, the last good one
 * or the rollback target, whatever the count says. Bad releases go first.
 */
export function planPrune(
  releases: ReleaseOnDisk[],
  opts: { keep: number; current: string | null; lastGood: string | null; rollbackTarget: string | null; bad: Set<string> },
): PrunePlan {
  const protectedReasons: Record<string, string> = {};
  if (opts.current) protectedReasons[opts.current] = 'current';
  if (opts.lastGood && !protectedReasons[opts.lastGood]) protectedReasons[opts.lastGood] = 'last good';
  if (opts.rollbackTarget && !protectedReasons[opts.rollbackTarget]) protectedReasons[opts.rollbackTarget] = 'rollback target';

  const complete = releases.filter((r) => r.stamp !== null);
  const ordered = [...complete].sort((a, b) => {
    const badA = opts.bad.has(a.version) ? 1 : 0;
    const badB = opts.bad.has(b.version) ? 1 : 0;
    if (badA !== badB) return badA - badB;
    // ISO-8601 UTC times order as plain strings: the newest first.
    return byCodeUnits(b.stamp!.completedAt ?? '', a.stamp!.completedAt ?? '');
  });
  const keep = new Set(Object.keys(protectedReasons).filter((v) => complete.some((r) => r.version === v)));
  for (const r of ordered) {
    if (keep.size >= opts.keep) break;
    keep.add(r.version);
  }
  return {
    keep: complete.filter((r) => keep.has(r.version)).map((r) => r.version),
    remove: complete.filter((r) => !keep.has(r.version)).map((r) => r.version),
    protectedReasons,
  };
}
