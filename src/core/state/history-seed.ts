/**
 * Seeds a rebuilt history from what root wrote: current good, bad marks kept, stamps' tag commits.
 * Never takes anything but bad marks from a history the service user could have written.
 */

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { BadMarks } from './bad-marks.js';
import type { HistoryStore } from './history.js';
import type { Layout } from '../layout.js';
import type { Logger } from '../log.js';
import { userName } from './proc.js';
import { STAMP_FILE, type ReleaseStamp } from './stamp.js';
import { versionOfTarget } from './switch.js';
import { tryParseVersion } from '../version.js';

/** The stamp of a release folder, read synchronously (the history opens synchronously); null when incomplete. */
function stampOf(layout: Layout, version: string): ReleaseStamp | null {
  try {
    const stamp = JSON.parse(readFileSync(path.join(layout.releasesDir, version, STAMP_FILE), 'utf8')) as ReleaseStamp;
    return stamp.version === version ? stamp : null;
  } catch {
    return null;
  }
}

function completeCurrent(layout: Layout): string | null {
  try {
    const version = versionOfTarget(readlinkSync(layout.currentLink));
    return version !== null && stampOf(layout, version) ? version : null;
  } catch {
    return null;
  }
}

/** Tag commits again from the stamps root wrote: the moved-tag refusal survives a rebuilt history. */
function restoreTagCommits(store: HistoryStore, layout: Layout): number {
  let names: string[] = [];
  try {
    names = readdirSync(layout.releasesDir);
  } catch {
    return 0;
  }
  let restored = 0;
  for (const name of names) {
    if (tryParseVersion(name) !== name) continue;
    const stamp = stampOf(layout, name);
    if (stamp?.kind !== 'git' || typeof stamp.commit !== 'string' || store.tagCommit(name)) continue;
    store.recordTagCommit(name, stamp.commit);
    restored++;
  }
  return restored;
}

export interface SeedOptions {
  /** What happened to the old history, for the one row that records the rebuild. */
  why: string;
  /** Bad marks to keep: from the root-only sidecar, and any a caller chose to carry over. */
  badMarks: BadMarks;
}

/**
 * A fresh history (the old one was unreadable, or lived where the service user could write it)
 * starts from what root wrote: the release `current` names is running, so it is marked good
 * (rollback and prune keep their bearings); the bad marks are kept; tag commits come back from
 * the release stamps; one row records what happened.
 */
export function seedHistory(store: HistoryStore, layout: Layout, log: Logger, opts: SeedOptions): void {
  const current = completeCurrent(layout);
  const id = store.beginDeploy({ kind: 'recover', fromVersion: current, toVersion: current, user: userName(), pid: process.pid });
  const bad = [...opts.badMarks].filter(([v]) => v !== current);
  for (const [version, reason] of bad) store.setMark(version, 'bad', reason, id, { source: 'rebuild' });
  if (current) store.setMark(current, 'good', null, id, { source: 'rebuild' });
  const tags = restoreTagCommits(store, layout);
  const kept = [bad.length && `${bad.length} bad mark(s) kept`, tags && `${tags} tag commit(s) restored from release stamps`].filter(Boolean);
  const note = [opts.why, ...kept, current ? `${current} (current) marked good` : ''].filter(Boolean).join('; ');
  store.finishDeploy(id, 'succeeded', note);
  log.debug(note);
}
