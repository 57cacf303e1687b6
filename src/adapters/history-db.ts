/**
 * Opens, migrates and checks the SQLite history file; a damaged one is moved aside, never deleted.
 * Never lets a damaged history fail a command the filesystem alone can answer.
 */

import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../core/package-root.js';
import type { Logger } from '../core/log.js';
import type { HistoryStore } from '../core/state/history.js';
import { SqliteHistory } from './sqlite-history.js';
import { Database, sqliteAddon, type Db } from './sqlite-driver.js';

export { sqliteAddon };

const nowIso = () => new Date().toISOString();

export function migrationsDir(): string {
  return path.join(packageRoot(), 'migrations');
}

/** Apply migrations/NNN_*.sql newer than PRAGMA user_version, each in its own transaction. */
export function migrate(db: Db, dir = migrationsDir()): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  const files = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
  let version = current;
  for (const file of files) {
    const n = Number(file.slice(0, 3));
    if (n <= current) continue;
    const sql = readFileSync(path.join(dir, file), 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${n}`);
    })();
    version = n;
  }
  return version;
}

function isCorruption(err: unknown, file: string): boolean {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_IOERR')) return true;
  // Something that is not a file where the database should be (a folder, say) cannot be opened either.
  return code === 'SQLITE_CANTOPEN' && existsSync(file) && !statSync(file).isFile();
}

/** quick_check reports one problem per line: the first two are enough for a warning. */
const oneLine = (check: unknown): string => String(check).split('\n').slice(0, 2).join('; ');

function configure(db: Db): void {
  // WAL lets status/history read while an install writes; FULL survives power loss at commit.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
}

/**
 * A full quick_check reads every page (~0.3 s at 100,000 deploys): `recover` and `verify` ask for
 * it. Elsewhere SQLite's own errors (not a database, a malformed page) surface where a page is read.
 */
function openChecked(file: string, fullCheck: boolean): Db {
  const db = new Database(file, sqliteAddon());
  try {
    configure(db);
    if (fullCheck) {
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw Object.assign(new Error(`quick_check: ${oneLine(check)}`), { code: 'SQLITE_CORRUPT' });
    }
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Move a corrupted database (and its WAL) aside so it can be inspected, never deleted. */
function moveAside(file: string): string {
  const stamp = nowIso().replace(/[:.]/g, '-');
  const aside = `${file}.corrupt-${stamp}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
  }
  return aside;
}

export interface OpenHistoryResult {
  store: HistoryStore;
  /** Set when a corrupt file was moved aside and a fresh history started. */
  rebuiltFrom?: string;
}

/**
 * The history names sources, users and failures: 0640, never world-readable. SQLite gives a
 * -wal/-shm it creates later the database file's mode, so fixing all three once is enough.
 */
function restrictHistoryFiles(db: Db, file: string): Db {
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) chmodSync(file + suffix, 0o640);
  }
  return db;
}

/**
 * Open (creating and migrating) the history database for a mutating command. A corrupt or
 * unreadable file is moved aside and a fresh one started, so deploys keep working.
 */
export function openHistory(file: string, log: Logger, opts: { fullCheck?: boolean } = {}): OpenHistoryResult {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  try {
    return { store: new SqliteHistory(restrictHistoryFiles(openChecked(file, opts.fullCheck ?? false), file)) };
  } catch (err) {
    if (!isCorruption(err, file)) throw err;
    const aside = moveAside(file);
    log.warn(`history database was unreadable (${(err as Error).message}); moved it to ${aside} and started a new one`);
    return { store: new SqliteHistory(restrictHistoryFiles(openChecked(file, false), file)), rebuiltFrom: aside };
  }
}

// What a read shows when the history turns out to be unreadable halfway: nothing, as if absent.
const EMPTY_READS: Record<string, () => unknown> = {
  listDeploys: () => [],
  steps: () => [],
  runningDeploys: () => [],
  goodHistory: () => [],
  marks: () => new Map(),
  getDeploy: () => null,
  tagCommit: () => null,
  getState: () => null,
};

/**
 * Reads that meet a damaged page answer as if there were no history (and say so once) instead of
 * failing the command: the filesystem still knows what runs. `readable()` tells whether that happened.
 */
function guardReads(store: SqliteHistory, file: string, onFailure: (message: string) => void): HistoryStore {
  let failed = false;
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'readable') return () => !failed;
      const value = Reflect.get(target, prop, receiver) as unknown;
      const empty = typeof prop === 'string' ? EMPTY_READS[prop] : undefined;
      if (typeof value !== 'function' || !empty) return value;
      return (...args: unknown[]) => {
        if (failed) return empty();
        try {
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (err) {
          if (!isCorruption(err, file)) throw err;
          failed = true;
          onFailure(`history database cannot be read (${(err as Error).message}); showing what the filesystem says`);
          return empty();
        }
      };
    },
  });
}

/** Open for reading only; null when there is no history yet or it cannot be opened. */
export function openHistoryReadOnly(file: string, log: Logger): HistoryStore | null {
  if (!existsSync(file)) return null;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true, ...sqliteAddon() });
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version < 1) {
      db.close();
      return null;
    }
    return guardReads(new SqliteHistory(db), file, (m) => log.warn(m));
  } catch (err) {
    log.warn(`history database cannot be read (${(err as Error).message}); showing what the filesystem says`);
    return null;
  }
}

/** The full page-by-page check (`verify` runs it): null when the file is sound or absent. */
export function historyProblem(file: string): string | null {
  if (!existsSync(file)) return null;
  let db: Db | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, ...sqliteAddon() });
    const check = db.pragma('quick_check', { simple: true });
    return check === 'ok' ? null : `quick_check: ${oneLine(check)}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    db?.close();
  }
}

/** The connection settings in effect (tests check WAL, synchronous=FULL and the busy timeout). */
export function connectionPragmas(store: HistoryStore): { journalMode: string; synchronous: number; busyTimeout: number } | null {
  return store instanceof SqliteHistory ? store.pragmas() : null;
}
