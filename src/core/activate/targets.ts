/**
 * What the filesystem and history together say: current, previous good, the rollback target.
 * Never answers an empty "ok" for a root with no release at all: exit 3.
 */

import type { Context } from '../context.js';
import { NotFoundError } from '../errors.js';
import type { HistoryStore } from '../state/history.js';
import { scanReleases, type ReleaseOnDisk } from '../state/releases.js';
import { compareVersions } from '../version.js';

export interface ReleaseFacts {
  current: string | null;
  releases: ReleaseOnDisk[];
  bad: Set<string>;
  /** The most recent release proven good (may equal current). */
  lastGood: string | null;
  /** Where `rollback` without --to would go: the last good complete release other than current. */
  rollbackTarget: string | null;
}

/** What the filesystem and the history together say about the releases on this device. */
export async function releaseFacts(ctx: Context, history: HistoryStore | null, current: string | null): Promise<ReleaseFacts> {
  const releases = await scanReleases(ctx.layout);
  const complete = new Set(releases.filter((r) => r.stamp).map((r) => r.version));
  const marks = history?.marks() ?? new Map();
  const bad = new Set([...marks.values()].filter((m) => m.state === 'bad').map((m) => m.version));
  const good = (history?.goodHistory() ?? []).filter((v) => complete.has(v) && !bad.has(v));
  const lastGood = good[0] ?? null;
  let rollbackTarget = good.find((v) => v !== current) ?? null;
  if (rollbackTarget === null) {
    // No history to go by (fresh or rebuilt database): the newest complete, not-bad release below current.
    const candidates = [...complete].filter((v) => v !== current && !bad.has(v)).sort(compareVersions).reverse();
    rollbackTarget = candidates.find((v) => current === null || compareVersions(v, current) < 0) ?? candidates[0] ?? null;
  }
  return { current, releases, bad, lastGood, rollbackTarget };
}

/**
 * Read-only commands on a root with no release at all (a fresh device, or a typo'd --root) say
 * so with exit 3, instead of an empty "ok" that a script or a tired operator would trust.
 */
export function requireInstalled(ctx: Context, facts: Pick<ReleaseFacts, 'current' | 'releases'>): void {
  if (facts.current === null && facts.releases.length === 0) {
    throw new NotFoundError(`nothing installed under ${ctx.layout.root}`, 'check --root (or SMOLOTCHI_ROOT) for a typo, or install a release: `smolotchi release install <ver>`');
  }
}
