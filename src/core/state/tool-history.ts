/**
 * Opens the tool's history in its root-only folder, importing the old history once.
 * Never opens it before the folder, the database and its -wal/-shm pass the owner and mode checks.
 */

import { existsSync } from 'node:fs';
import { openHistory, openHistoryReadOnly } from '../../adapters/history-db.js';
import { importLegacyHistory, type LegacyHistory } from '../../adapters/legacy-history.js';
import { mirrorBadMarks, readBadMarks, type BadMarks } from './bad-marks.js';
import type { HistoryStore } from './history.js';
import { seedHistory } from './history-seed.js';
import type { Layout } from '../layout.js';
import type { Logger } from '../log.js';
import { checkPrivateDir, checkPrivateFile, ensurePrivateDir, prepareStateParent } from './private-dir.js';
import { tryParseVersion } from '../version.js';

/**
 * The history lives in the tool's root-only folder (/var/lib/smolotchi/release/releases.db), whose
 * owner and mode, and those of the database and its -wal/-shm, are checked before every open.
 */

const HISTORY_FOLDER = 'history folder';

function checkHistoryFiles(layout: Layout): void {
  for (const suffix of ['', '-wal', '-shm']) checkPrivateFile(layout.historyDb + suffix);
  checkPrivateFile(layout.badMarksFile);
}

/** Only bad marks cross over from the old file: a forged one can only refuse (until --force), never allow. */
function legacySeed(layout: Layout, legacy: LegacyHistory, sidecar: BadMarks) {
  const badMarks: BadMarks = new Map(legacy.badMarks.filter((m) => tryParseVersion(m.version) === m.version).map((m) => [m.version, m.reason]));
  for (const [v, reason] of sidecar) badMarks.set(v, reason);
  const unread = legacy.problem ? ` (it could not be read: ${legacy.problem})` : '';
  const why =
    `history moved to ${layout.historyDb}; the old ${layout.legacyHistoryDb} was writable by the service user, so it is not trusted: ` +
    `a read-only copy is kept as ${legacy.archive}${unread}, and only its bad marks are carried over`;
  return { why, badMarks };
}

/**
 * For mutating commands: create, check, migrate from the old place, and open. `fullCheck` reads
 * every page first (`recover`): slow on a long history, so other commands rely on SQLite's errors.
 */
export function openToolHistory(layout: Layout, log: Logger, opts: { fullCheck?: boolean } = {}): HistoryStore {
  prepareStateParent(layout);
  ensurePrivateDir(layout.toolStateDir, HISTORY_FOLDER);
  checkHistoryFiles(layout);
  const legacy = existsSync(layout.historyDb) ? null : importLegacyHistory(layout.legacyHistoryDb, layout.toolStateDir);
  const opened = openHistory(layout.historyDb, log, opts);
  const store = mirrorBadMarks(opened.store, layout.badMarksFile);
  const sidecar = readBadMarks(layout.badMarksFile);
  if (opened.rebuiltFrom) {
    const why = `history rebuilt from the filesystem; the unreadable file was moved to ${opened.rebuiltFrom}`;
    seedHistory(store, layout, log, { why, badMarks: sidecar });
  } else if (legacy) {
    const seed = legacySeed(layout, legacy, sidecar);
    log.warn(seed.why);
    seedHistory(store, layout, log, seed);
  }
  return store;
}

/** For read-only commands: null when there is no history (yet) or it cannot be read; exit 4 when its folder is not root's. */
export function readToolHistory(layout: Layout, log: Logger): HistoryStore | null {
  let present: boolean;
  try {
    present = checkPrivateDir(layout.toolStateDir, HISTORY_FOLDER);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    log.warn(`the history is root's alone (${layout.toolStateDir}); run as root to see it`);
    return null;
  }
  if (!present) {
    if (existsSync(layout.legacyHistoryDb)) log.warn(`the history is still at its old place (${layout.legacyHistoryDb}); the next mutating command (or boot) moves it`);
    return null;
  }
  checkHistoryFiles(layout);
  return openHistoryReadOnly(layout.historyDb, log);
}
