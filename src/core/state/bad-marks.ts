/**
 * Bad marks kept a second time, in a JSON file beside the history in the root-only folder.
 * Never lets a rebuilt history turn a release that failed its gate into one that installs again.
 */

import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { HistoryStore } from './history.js';
import { fsyncDir, randomSuffix } from '../fsutil.js';
import { checkPrivateFile } from './private-dir.js';
import { tryParseVersion } from '../version.js';

export type BadMarks = Map<string, string | null>;

export function readBadMarks(file: string): BadMarks {
  checkPrivateFile(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return new Map();
  }
  try {
    const obj = JSON.parse(text) as Record<string, unknown>;
    const out: BadMarks = new Map();
    for (const [version, reason] of Object.entries(obj)) {
      if (tryParseVersion(version) === version) out.set(version, typeof reason === 'string' ? reason : null);
    }
    return out;
  } catch {
    return new Map(); // a torn file cannot be: it is replaced by rename; garbage means nothing to add
  }
}

/** Replace the file by temp (O_EXCL) + fsync + rename: old or new, never torn. */
function writeBadMarks(file: string, marks: BadMarks): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomSuffix()}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, JSON.stringify(Object.fromEntries(marks), null, 2) + '\n');
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Mirror every bad mark (and its clearing by a good one) of `store` into `file`. */
export function mirrorBadMarks(store: HistoryStore, file: string): HistoryStore {
  const setMark = store.setMark.bind(store);
  store.setMark = (version, state, reason, deployId, by) => {
    setMark(version, state, reason, deployId, by);
    const marks = readBadMarks(file);
    const changed = state === 'bad' ? marks.get(version) !== reason || !marks.has(version) : marks.delete(version);
    if (state === 'bad') marks.set(version, reason);
    if (changed) writeBadMarks(file, marks);
  };
  return store;
}
