/**
 * Backs up the app's SQLite databases through a private copy and reads their schema and row counts.
 * Never lets SQLite, as root, open a live file of the service user: only the O_NOFOLLOW copy.
 */

import { Database, sqliteAddon, type Db } from './sqlite-driver.js';
import { constants, type Stats } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.js';
import { copyHandle } from '../core/fsutil.js';

/**
 * The app's own SQLite databases (events.db), as root sees them: written by the service user, in
 * a folder the service user owns. So the live files are never opened by SQLite as root (it would
 * follow a link planted in their place, and create root-owned -wal/-shm files the app can no
 * longer write); they are read through O_NOFOLLOW descriptors into a private folder, and SQLite's
 * online backup turns that copy (with its WAL) into one consistent file.
 */

export interface DbFacts {
  /** The app's schema_version table (MAX(version)), else PRAGMA user_version. */
  schemaVersion: number;
  /** Rows per table, to tell an operator how much newer data a restore drops. */
  rows: Record<string, number>;
}

const SIDE_FILES = ['-wal', '-shm'] as const;

/** Open a file of the app for reading; a symlink in its place is refused, not followed. */
async function openNoFollow(file: string): Promise<{ handle: FileHandle; st: Stats } | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // A link would make root copy (and later hand to the service user) a file of its choosing.
    if (code === 'ELOOP') throw new ReleaseError(`${file} is a symlink; the app's database must be a regular file`);
    throw new ReleaseError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new ReleaseError(`${file} is not a regular file`);
  }
  return { handle, st };
}

async function copyOut(handle: FileHandle, dest: string): Promise<void> {
  const out = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await copyHandle(handle, out);
  } finally {
    await out.close();
  }
}

const stamp = (st: Stats) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;

export function readFacts(db: Db): DbFacts {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
  const rows: Record<string, number> = {};
  for (const t of tables) rows[t] = (db.prepare(`SELECT COUNT(*) AS n FROM "${t.replaceAll('"', '""')}"`).get() as { n: number }).n;
  let schemaVersion = Number(db.pragma('user_version', { simple: true }));
  if (tables.includes('schema_version')) {
    const r = db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
    if (r.v !== null) schemaVersion = Number(r.v);
  }
  return { schemaVersion, rows };
}

/**
 * Back up `live` into `dest` (a path in a root-only folder; `work` is a private scratch folder).
 * Returns null when there is no database. Refuses when the files change while being read (a
 * writer outside the stopped units): a half-copied WAL is not a snapshot.
 */
export async function backupAppDb(live: string, dest: string, work: string): Promise<DbFacts | null> {
  const main = await openNoFollow(live);
  if (main === null) return null;
  const copy = path.join(work, path.basename(dest));
  const opened = [main];
  try {
    const sides = await Promise.all(SIDE_FILES.map((s) => openNoFollow(live + s)));
    sides.forEach((s) => s && opened.push(s));
    await copyOut(main.handle, copy);
    // The -shm index is rebuilt from the WAL; only the WAL holds data.
    if (sides[0]) await copyOut(sides[0].handle, `${copy}-wal`);
    for (const f of opened) {
      if (stamp(await f.handle.stat()) !== stamp(f.st)) throw new ReleaseError(`${live} changed while it was copied: something outside the stopped units writes it`);
    }
  } finally {
    await Promise.all(opened.map((f) => f.handle.close()));
  }
  let db: Db | null = null;
  try {
    db = new Database(copy, { fileMustExist: true, ...sqliteAddon() });
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new ReleaseError(`${live} is damaged (quick_check: ${String(check).split('\n')[0]})`);
    await db.backup(dest);
    return readFacts(db);
  } catch (err) {
    if (err instanceof ReleaseError) throw err;
    throw new ReleaseError(`cannot back up ${live}: ${(err as Error).message}`);
  } finally {
    db?.close();
    await Promise.all(['', '-wal', '-shm', '-journal'].map((s) => rm(copy + s, { force: true })));
  }
}

/** Facts of a snapshot file (root-only, written by us): safe to open with SQLite directly. */
export function snapshotFacts(file: string): DbFacts {
  const db = new Database(file, { readonly: true, fileMustExist: true, ...sqliteAddon() });
  try {
    return readFacts(db);
  } finally {
    db.close();
  }
}

/** Facts of the live database, read through the same private copy as a backup (null: none). */
export async function liveFacts(live: string, work: string): Promise<DbFacts | null> {
  const dest = path.join(work, `facts-${process.pid}.db`);
  try {
    return await backupAppDb(live, dest, work);
  } finally {
    await rm(dest, { force: true });
  }
}
