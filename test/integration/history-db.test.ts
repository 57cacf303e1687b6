import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionPragmas, openHistory, sqliteAddon } from '../../src/adapters/history-db.js';
import { silentLogger } from '../../src/core/log.js';
import { packageRoot } from '../../src/core/package-root.js';
import { makeLayout } from '../../src/core/layout.js';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { checkState, currentOf } from '../support/invariants.js';

/** The history is the audit log, never a single point of failure: durable settings, and a damaged file moved aside. */

const BLOCKER = `
const Database = require('better-sqlite3');
const db = new Database(process.argv[1]);
db.exec('BEGIN IMMEDIATE');
db.prepare("INSERT INTO deploys (kind, status, started_at) VALUES ('prune', 'succeeded', 'blocker')").run();
console.log('locked');
const until = Date.now() + 700;
while (Date.now() < until) {}
db.exec('COMMIT');
db.close();
`;

describe('connection settings', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-historydb-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('WAL, synchronous=FULL and a busy timeout are in effect', () => {
    const file = path.join(dir, 'a.db');
    const { store } = openHistory(file, silentLogger);
    try {
      expect(connectionPragmas(store)).toEqual({ journalMode: 'wal', synchronous: 2, busyTimeout: 5000 });
      // WAL is a property of the file: a second connection sees it too.
      const other = new Database(file, { readonly: true });
      expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
      other.close();
    } finally {
      store.close();
    }
  });

  it('a deferred write is committed at once (another connection reads it), and synchronous=FULL is back after it, even when it throws', () => {
    const file = path.join(dir, 'deferred.db');
    const { store } = openHistory(file, silentLogger);
    try {
      const id = store.deferSync(() => {
        expect(connectionPragmas(store)?.synchronous).toBe(1);
        return store.beginDeploy({ kind: 'rollback', fromVersion: '1.1.0', toVersion: '1.0.0', user: 'test', pid: process.pid });
      });
      store.deferSync(() => store.step(id, 'render-units'));
      expect(connectionPragmas(store)?.synchronous).toBe(2);
      const other = new Database(file, { readonly: true });
      expect(other.prepare('SELECT step FROM deploys WHERE id = ?').get(id)).toEqual({ step: 'render-units' });
      other.close();
      expect(() => store.deferSync(() => store.step(9_999, 'no such deploy'))).toThrow();
      expect(connectionPragmas(store)?.synchronous).toBe(2);
    } finally {
      store.close();
    }
  });

  it("better-sqlite3's addon is loaded by its path, not looked up", () => {
    const { nativeBinding } = sqliteAddon();
    expect(nativeBinding).toMatch(/better_sqlite3\.node$/);
    expect(existsSync(nativeBinding!)).toBe(true);
  });

  it('a writer waits for another process holding the write lock instead of failing with SQLITE_BUSY', async () => {
    const file = path.join(dir, 'b.db');
    const { store } = openHistory(file, silentLogger);
    // Another process takes the write lock for 700 ms (better-sqlite3 is synchronous: it must be another process).
    const holder = execa(process.execPath, ['-e', BLOCKER, file], { cwd: packageRoot(), reject: false });
    await new Promise<void>((resolve) => holder.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('locked') && resolve()));
    // Had it failed with SQLITE_BUSY this would throw; that it waited shows in the order of the rows.
    const ours = store.beginDeploy({ kind: 'prune', fromVersion: null, toVersion: null, user: 'test', pid: process.pid });
    store.close();
    expect((await holder).exitCode).toBe(0);
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT id, started_at FROM deploys ORDER BY id').all() as { id: number; started_at: string }[];
    db.close();
    expect(rows.map((r) => r.started_at === 'blocker')).toEqual([true, false]);
    expect(rows[1]!.id).toBe(ours);
  });
});

/**
 * `latent`: a damaged page SQLite only meets when a command reads it. Commands no longer read every
 * page on open (that costs ~0.3 s at 100,000 deploys); `verify` finds it and `recover` moves it aside.
 */
type Damage = [string, (file: string) => void, { latent?: boolean }?];

const DAMAGES: Damage[] = [
  ['overwritten with random bytes', (f) => writeFileSync(f, randomBytes(statSync(f).size || 8192))],
  ['truncated to half its size', (f) => truncateSync(f, Math.floor(statSync(f).size / 2) + 100)],
  [
    'with a damaged page behind a valid header',
    (f) => {
      const fd = openSync(f, 'r+');
      writeSync(fd, randomBytes(4096), 0, 4096, 4096 * 2);
      closeSync(fd);
    },
    { latent: true },
  ],
  ['replaced by a directory', (f) => (rmSync(f), mkdirSync(f))],
];

describe('a corrupted or unreadable releases.db', () => {
  let box: CrashBox;
  beforeAll(async () => {
    box = await makeCrashBox('historydb');
    for (const v of ['0.9.0', '1.0.0', '1.1.0']) expect((await box.cli(['install', v])).exitCode).toBe(0);
    box.saveTemplate('three');
  });
  afterAll(() => box?.cleanup());

  const historyWarnings = (stderr: string) => stderr.split('\n').filter((l) => /history database/.test(l));

  it.each(DAMAGES)('%s: read-only commands show the filesystem; the next mutating command moves it aside, once', async (_what, damage, how) => {
    box.useTemplate('three');
    const layout = makeLayout(box.root);
    for (const suffix of ['-wal', '-shm']) rmSync(layout.historyDb + suffix, { force: true });
    damage(layout.historyDb);

    // Read-only: they work from the filesystem, and say why the history is missing.
    const status = await box.cli(['status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    if (how?.latent) {
      // The page status reads may be intact: then it shows the history; if not, it says so once.
      const shown = JSON.parse(status.stdout) as { current: string; historyAvailable: boolean };
      expect(shown.current).toBe('1.1.0');
      expect(historyWarnings(status.stderr)).toHaveLength(shown.historyAvailable ? 0 : 1);
    } else {
      expect(JSON.parse(status.stdout)).toMatchObject({ current: '1.1.0', historyAvailable: false, drift: false });
      expect(historyWarnings(status.stderr)).toHaveLength(1);
    }
    const list = await box.cli(['list', '--json']);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).releases.map((r: { version: string }) => r.version)).toEqual(['1.1.0', '1.0.0', '0.9.0']);
    const history = await box.cli(['history', '--json']);
    expect(history.exitCode).toBe(0);
    if (!how?.latent) expect(JSON.parse(history.stdout)).toMatchObject({ historyAvailable: false, deploys: [] });

    // verify reads every page: the damage is a finding (exit 4), whatever the releases say.
    const verify = await box.cli(['verify', '--all', '--json']);
    expect(verify.exitCode, verify.stdout).toBe(4);
    expect(JSON.parse(verify.stdout).historyProblem).toBeTruthy();

    // Mutating: moved aside (never deleted), a fresh history seeded from the filesystem, said once.
    // A latent page is found by recover, which checks every page (at boot, or by hand after verify).
    const repair = how?.latent ? await box.cli(['recover']) : null;
    const back = await box.cli(['rollback']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(currentOf(box.root)).toBe('1.0.0');
    const said = historyWarnings(`${repair?.stderr ?? ''}\n${back.stderr}`);
    expect(said, back.stderr).toHaveLength(1);
    expect(said[0]).toMatch(/moved it to .*releases\.db\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z and started a new one/);
    const aside = readdirSync(layout.toolStateDir).filter((n) => /^releases\.db\.corrupt-/.test(n) && !/-(wal|shm)$/.test(n));
    expect(aside).toHaveLength(1);

    // From now on: quiet, and the history tells the story.
    const after = await box.cli(['status', '--json']);
    expect(historyWarnings(after.stderr)).toEqual([]);
    expect(JSON.parse(after.stdout)).toMatchObject({ current: '1.0.0', lastGood: '1.0.0', historyAvailable: true });
    const rows = JSON.parse((await box.cli(['history', '--json'])).stdout).deploys as { kind: string; status: string; error: string | null }[];
    expect(rows.map((r) => r.kind)).toEqual(['rollback', 'recover']);
    expect(rows[1]!.error).toMatch(/history rebuilt from the filesystem; .*; 1\.1\.0 \(current\) marked good/);

    // Rollback (back to 1.1.0, marked good by the rebuild), install and prune keep working.
    expect((await box.cli(['rollback'])).exitCode).toBe(0);
    expect(currentOf(box.root)).toBe('1.1.0');
    expect((await box.cli(['install', '2.0.0'])).exitCode).toBe(0);
    const prune = await box.cli(['prune', '--keep', '2']);
    expect(prune.exitCode, prune.stderr).toBe(0);
    expect(JSON.parse((await box.cli(['list', '--json'])).stdout).releases.map((r: { version: string }) => r.version)).toEqual(['2.0.0', '1.1.0']);
    expect(checkState(box.root)).toEqual([]);
    expect(existsSync(path.join(layout.toolStateDir, aside[0]!))).toBe(true);
  });
});
