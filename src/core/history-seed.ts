import { readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { HistoryStore } from './history.js';
import type { Layout } from './layout.js';
import type { Logger } from './log.js';
import { userName } from './proc.js';
import { STAMP_FILE } from './stamp.js';
import { versionOfTarget } from './switch.js';

/** The complete release `current` names, read synchronously (the history opens synchronously). */
function completeCurrent(layout: Layout): string | null {
  try {
    const version = versionOfTarget(readlinkSync(layout.currentLink));
    if (version === null) return null;
    const stamp = JSON.parse(readFileSync(path.join(layout.releasesDir, version, STAMP_FILE), 'utf8')) as { version?: unknown };
    return stamp.version === version ? version : null;
  } catch {
    return null;
  }
}

/**
 * A fresh history after the old file was moved aside starts from what the filesystem shows: the
 * release `current` names is running, so it is marked good (rollback and prune keep their
 * bearings), and one row records what happened.
 */
export function seedHistory(store: HistoryStore, layout: Layout, log: Logger, movedTo: string): void {
  const current = completeCurrent(layout);
  const note = `history rebuilt from the filesystem; the unreadable file was moved to ${movedTo}${current ? `; ${current} (current) marked good` : ''}`;
  const id = store.beginDeploy({ kind: 'recover', fromVersion: current, toVersion: current, user: userName(), pid: process.pid });
  if (current) store.setMark(current, 'good', null, id, { source: 'rebuild' });
  store.finishDeploy(id, 'succeeded', note);
  log.debug(note); // openHistory has already said, once, that the file was moved aside
}
