/**
 * Imports the history older versions kept where the service user could write it.
 * Never opens that file in place with SQLite; only a private copy is read, and only its bad marks.
 */

import { Database, sqliteAddon, type Db } from './sqlite-driver.js';
import { chmodSync, closeSync, constants, existsSync, fstatSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The history older versions kept at /var/lib/smolotchi/releases.db, a file the service user
 * could write: untrusted input. It is never opened in place (a planted -wal/-shm link would make
 * SQLite write through it); its bytes are copied, without following links, into the tool's
 * root-only folder, and only that private copy is read, with the schema distrusted.
 */

const MAX_LEGACY_BYTES = 64 * 1024 * 1024;
const MAX_MARKS = 1000;

export interface LegacyHistory {
  /** The private, read-only archive of what the old file held. */
  archive: string;
  badMarks: { version: string; reason: string | null }[];
  /** Why nothing could be read, when that is so. */
  problem: string | null;
}

/** The bytes of a regular file, read through one O_NOFOLLOW descriptor; null when absent or not a regular file. */
function readRegular(file: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null; // missing, or a symlink (ELOOP): nothing to take from it
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_LEGACY_BYTES) return null;
    const buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < buf.length) {
      const n = readSync(fd, buf, at, buf.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/** Copy the old history into `privateDir` and read its bad marks from the copy; null when there is none. */
export function importLegacyHistory(legacyFile: string, privateDir: string): LegacyHistory | null {
  const main = readRegular(legacyFile);
  if (main === null) return null;
  const archive = path.join(privateDir, 'legacy-releases.db');
  for (const suffix of ['', '-wal', '-shm']) rmSync(archive + suffix, { force: true });
  writeFileSync(archive, main, { flag: 'wx', mode: 0o600 });
  const wal = readRegular(`${legacyFile}-wal`);
  if (wal !== null) writeFileSync(`${archive}-wal`, wal, { flag: 'wx', mode: 0o600 });
  let db: Db | null = null;
  try {
    db = new Database(archive, { fileMustExist: true, ...sqliteAddon() });
    // Views or triggers in a forged file must not run functions with side effects.
    db.pragma('trusted_schema = OFF');
    db.pragma('cell_size_check = ON');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') return { archive, badMarks: [], problem: `quick_check: ${String(check).split('\n')[0]}` };
    const rows = db.prepare("SELECT version, reason FROM release_marks WHERE state = 'bad' LIMIT ?").all(MAX_MARKS) as { version: unknown; reason: unknown }[];
    // One self-contained file from now on: the archive is kept, read-only, for whoever wants to look.
    db.pragma('journal_mode = DELETE');
    const badMarks = rows
      .filter((r) => typeof r.version === 'string')
      .map((r) => ({ version: r.version as string, reason: typeof r.reason === 'string' ? r.reason.slice(0, 500) : null }));
    return { archive, badMarks, problem: null };
  } catch (err) {
    return { archive, badMarks: [], problem: (err as Error).message };
  } finally {
    db?.close();
    // Our own file in our own folder (created with O_EXCL): read-only from now on.
    for (const suffix of ['', '-wal']) if (existsSync(archive + suffix)) chmodSync(archive + suffix, 0o400);
  }
}
