import { makeLayout } from '../../src/core/layout.js';
import { KILL_ENV } from '../../src/core/killpoint.js';
import Database from 'better-sqlite3';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, renameSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl, type FakeSystemctl } from '../support/fake-systemctl.js';

// App data across upgrade and rollback on a sandbox root: the release's own health check plays
// the new release's first start (it migrates the app's database, then passes or fails).
let work: string;
let root: string;
let fake: FakeSystemctl;
let repoPath: string;
const db = () => path.join(root, 'var/lib/smolotchi/events.db');
const snapshots = () => path.join(root, 'var/lib/smolotchi/release/snapshots');

/** A health check that migrates the app's database to schema 2 (writing a row) unless it is there, then exits `code`. */
const migratingCheck = (dbPath: string, version: string, code: number) => ({
  content: `#!/usr/bin/python3
import sqlite3, time, os
con = sqlite3.connect(${JSON.stringify(dbPath)})
con.execute("PRAGMA journal_mode=WAL")
if con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] < 2:
    with con:
        con.execute("ALTER TABLE events ADD COLUMN detail TEXT")
        con.execute("INSERT INTO schema_version VALUES (2, ?, ?)", (time.time(), ${JSON.stringify(version)}))
        con.execute("INSERT INTO events (kind, version) VALUES ('migrated', ?)", (${JSON.stringify(version)},))
# Like a killed service: the WAL stays behind, unmerged.
os._exit(${code})
`,
  mode: 0o755,
});

/** The app's database as the old release leaves it: schema 1, `rows` events, in WAL mode. */
function seedDb(rows: number): void {
  mkdirSync(path.dirname(db()), { recursive: true });
  const d = new Database(db());
  d.pragma('journal_mode = WAL');
  d.exec("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_ts REAL NOT NULL, note TEXT); INSERT INTO schema_version VALUES (1, 0, '1.0.0');");
  d.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, version TEXT NOT NULL)');
  for (let i = 0; i < rows; i++) d.prepare("INSERT INTO events (kind, version) VALUES ('seen', '1.0.0')").run();
  d.close();
}
function addRows(n: number, version: string): void {
  const d = new Database(db());
  for (let i = 0; i < n; i++) d.prepare("INSERT INTO events (kind, version) VALUES ('seen', ?)").run(version);
  d.close();
}
function dbState(): { schema: number; rows: number; columns: string[] } {
  const d = new Database(db(), { readonly: true });
  try {
    const schema = (d.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number }).v;
    const rows = (d.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
    const columns = (d.prepare('PRAGMA table_info(events)').all() as { name: string }[]).map((c) => c.name);
    return { schema, rows, columns };
  } finally {
    d.close();
  }
}

const cli = (...args: string[]) => runCli(['release', ...args, '--root', root, '--systemctl', fake.path]);
const current = () => path.basename(readlinkSync(path.join(root, 'opt/smolotchi/current')));

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-app-data-'));
  root = path.join(work, 'root');
  const { repo } = await createSampleRepo(path.join(work, 'app'), [
    { version: '1.0.0' },
    { version: '2.0.0', files: { 'packaging/health-check': migratingCheck(path.join(root, 'var/lib/smolotchi/events.db'), '2.0.0', 1) } },
    { version: '2.1.0', files: { 'packaging/health-check': migratingCheck(path.join(root, 'var/lib/smolotchi/events.db'), '2.1.0', 0) } },
    { version: '2.2.0', files: { 'packaging/health-check': { content: '#!/bin/sh\nexit 1\n', mode: 0o755 } } },
  ]);
  repoPath = repo;
  fake = makeFakeSystemctl(mkdtempSync(path.join(work, 'fake-')));
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
  const r = await cli('install', '1.0.0');
  if (r.exitCode !== 0) throw new Error(r.stderr);
  seedDb(3);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('app data across upgrade and rollback', () => {
  it('a release that migrates the schema and fails its gate: exit 5, the data goes back with the code', async () => {
    const calls = fake.log().length;
    const r = await cli('install', '2.0.0');
    expect(r.exitCode, r.stderr).toBe(5);
    expect(current()).toBe('1.0.0');
    expect(r.stdout).toMatch(/app data restored from the snapshot of .*: \/var\/lib\/smolotchi\/events\.db \(schema 1\)/);
    // The old WAL (holding 2.0.0's migration) must not be replayed into the restored file.
    expect(existsSync(`${db()}-wal`)).toBe(false);
    expect(dbState()).toEqual({ schema: 1, rows: 3, columns: ['id', 'kind', 'version'] });
    // The units were stopped for the snapshot, before the switch restarted them.
    const log = fake.log().slice(calls).map((c) => c.filter((a) => !a.startsWith('-')).join(' '));
    const stop = log.findIndex((c) => c.startsWith('stop ') && c.includes('smolotchi-core.service'));
    const restart = log.findIndex((c) => c.startsWith('restart '));
    expect(stop, log.join('\n')).toBeGreaterThanOrEqual(0);
    expect(stop).toBeLessThan(restart);
    // Root-only snapshot folder, recorded with the deploy.
    const deployId = (await cli('history', '--json', '--limit', '5')).json<{ deploys: { id: number; kind: string; toVersion: string }[] }>().deploys.find((d) => d.kind === 'install' && d.toVersion === '2.0.0')!.id;
    expect(statSync(snapshots()).mode & 0o777).toBe(0o700);
    expect(readdirSync(path.join(snapshots(), String(deployId))).sort()).toEqual(['1-events.db', 'snapshot.json']);
    const history = new Database(makeLayout(root).historyDb, { readonly: true });
    const row = history.prepare('SELECT from_version, to_version, restored_by FROM data_snapshots WHERE deploy_id = ?').get(deployId);
    history.close();
    expect(row).toMatchObject({ from_version: '1.0.0', to_version: '2.0.0' });
  });

  it('a crash after the new release migrated the data, before its gate finished: recovery puts the data back with the code', async () => {
    const killed = await runCli(['release', 'install', '2.1.0', '--root', root, '--systemctl', fake.path], { env: { [KILL_ENV]: 'gate-passed' } });
    expect(killed.exitCode, `not killed at gate-passed: ${killed.stderr}`).toBe(-1);
    expect(current()).toBe('2.1.0');
    expect(dbState().schema).toBe(2); // 2.1.0's first start migrated it
    // Recovery itself killed right after the restore, before its flip: the next one does it all again.
    const half = await runCli(['release', 'recover', '--root', root, '--systemctl', fake.path], { env: { [KILL_ENV]: 'recovery-data-restored' } });
    expect(half.exitCode, `not killed at recovery-data-restored: ${half.stderr}`).toBe(-1);
    expect(current()).toBe('2.1.0');
    const calls = fake.log().length;
    const r = await cli('recover', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ report: { revertedTo: '1.0.0', dataRestored: ['/var/lib/smolotchi/events.db'] } });
    expect(r.stderr).toMatch(/put the app's data back as it was before 2\.1\.0 ran: \/var\/lib\/smolotchi\/events\.db/);
    expect(current()).toBe('1.0.0');
    expect(existsSync(`${db()}-wal`)).toBe(false);
    expect(dbState()).toEqual({ schema: 1, rows: 3, columns: ['id', 'kind', 'version'] });
    // The units that ran 2.1.0 were stopped before the restore, then restarted on 1.0.0.
    const log = fake.log().slice(calls).map((c) => c.filter((a) => !a.startsWith('-')).join(' '));
    const stop = log.findIndex((c) => c.startsWith('stop ') && c.includes('smolotchi-core.service'));
    const restart = log.findIndex((c) => c.startsWith('restart ') && c.includes('smolotchi-core.service'));
    expect(stop, log.join('\n')).toBeGreaterThanOrEqual(0);
    expect(stop).toBeLessThan(restart);
  });

  it('rollback says when the schema differs; --restore-data restores the target\'s snapshot and says what is lost', async () => {
    expect((await cli('install', '2.1.0')).exitCode).toBe(0);
    expect(dbState().schema).toBe(2);
    addRows(2, '2.1.0');

    const plan = await cli('rollback', '--dry-run', '--json');
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stderr).toMatch(/schema differs from what 1\.0\.0 last ran on: \/var\/lib\/smolotchi\/events\.db schema 2 \(1\.0\.0 last ran on 1\)/);
    expect(plan.json()).toMatchObject({ dataComparison: { schemaDiffers: true, newerRows: 4 } });

    const r = await cli('rollback', '--restore-data');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/restoring the app's data of 1\.0\.0 from .* ago\): 4 rows written since will be lost \(3 events, 1 schema_version\)/);
    expect(r.stdout).toMatch(/app data restored/);
    expect(current()).toBe('1.0.0');
    expect(dbState()).toEqual({ schema: 1, rows: 3, columns: ['id', 'kind', 'version'] });
    expect(lstatSync(db()).uid).toBe(process.getuid!());

    // The data 2.1.0 left was snapshotted on the way: rolling forward with it brings it back.
    const forward = await cli('rollback', '--to', '2.1.0', '--restore-data');
    expect(forward.exitCode, forward.stderr).toBe(0);
    expect(dbState()).toMatchObject({ schema: 2, rows: 6 });

    // Data only (the current release's data as it was when it was last left): the code stays.
    addRows(1, '2.1.0');
    const calls = fake.log().length;
    const inPlace = await cli('rollback', '--to', '2.1.0', '--restore-data');
    expect(inPlace.exitCode, inPlace.stderr).toBe(0);
    // Its units stopped for the restore start again as a deploy starts them: core's call, then the rest's.
    const restarts = fake.log().slice(calls).filter((c) => c.includes('restart')).map((c) => c.slice(c.indexOf('--') + 1));
    expect(restarts).toEqual([['smolotchi-core.service'], expect.arrayContaining(['smolotchi-web.service'])]);
    expect(inPlace.stderr).toMatch(/1 rows written since will be lost \(1 events\)/);
    expect(current()).toBe('2.1.0');
    expect(dbState()).toMatchObject({ schema: 2, rows: 6 });
    const same = await cli('rollback', '--to', '2.1.0');
    expect(same.exitCode).toBe(1);
    expect(same.stderr).toContain('already current');
  });

  it('prune keeps one snapshot per release on disk; --dry-run names the ones it would remove', async () => {
    const before = readdirSync(snapshots()).sort();
    const dry = (await cli('prune', '--dry-run', '--json')).json<{ snapshotsRemoved: number[] }>();
    expect(readdirSync(snapshots()).sort()).toEqual(before);
    const r = await cli('prune', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json<{ snapshotsRemoved: number[] }>().snapshotsRemoved.sort()).toEqual(dry.snapshotsRemoved.sort());
    const left = readdirSync(snapshots());
    expect(left.length).toBe(2); // newest leaving 1.0.0, newest leaving 2.1.0
    expect(left.length + dry.snapshotsRemoved.length).toBe(before.length);
  });

  it('rollback --restore-data without a snapshot of the target: exit 3, nothing switched', async () => {
    rmSync(snapshots(), { recursive: true, force: true });
    const r = await cli('rollback', '--to', '1.0.0', '--restore-data');
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/no snapshot of the app's data was taken when 1\.0\.0 was last left/);
    expect(current()).toBe('2.1.0');
  });

  it('a symlink planted in place of the database is refused, never followed: nothing switched, nothing copied', async () => {
    // The service user owns the folder: it can swap events.db for a link to root's history.
    renameSync(db(), `${db()}.real`);
    symlinkSync(makeLayout(root).historyDb, db());
    const r = await cli('rollback', '--to', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/events\.db is a symlink/);
    expect(current()).toBe('2.1.0');
    expect(readdirSync(snapshots())).toEqual([]);
    rmSync(db());
    renameSync(`${db()}.real`, db());
  });

  it('a snapshots folder opened to others is refused', async () => {
    rmSync(snapshots(), { recursive: true, force: true });
    mkdirSync(snapshots(), { mode: 0o777 });
    const fs = await import('node:fs');
    fs.chmodSync(snapshots(), 0o777);
    const r = await cli('rollback', '--to', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/data snapshots folder .*snapshots is writable by group or others/);
    expect(current()).toBe('2.1.0');
  });

  it('a data folder swapped for a link after the snapshot: the restore does not write through it; the code still goes back', async () => {
    // The database in a folder of the service user's, which it can swap for a link to anywhere.
    rmSync(snapshots(), { recursive: true, force: true }); // the last test opened it to others
    const was = current();
    const data = path.join(root, 'var/lib/smolotchi/data');
    mkdirSync(data);
    // A copy: 2.1.0's own check still reads the default path.
    copyFileSync(db(), path.join(data, 'events.db'));
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repoPath, SMOLOTCHI_DB: '/var/lib/smolotchi/data/events.db' });
    const elsewhere = path.join(work, 'elsewhere');
    mkdirSync(elsewhere);
    const pauseDir = mkdtempSync(path.join(work, 'pause-'));
    const running = runCli(['release', 'install', '2.2.0', '--root', root, '--systemctl', fake.path], {
      env: { SMOLOTCHI_TEST_PAUSE_AT: 'data-snapshotted', SMOLOTCHI_TEST_PAUSE_DIR: pauseDir },
    });
    const paused = path.join(pauseDir, 'data-snapshotted.paused');
    let finished: Awaited<typeof running> | null = null;
    void running.then((x) => (finished = x));
    while (!existsSync(paused) && finished === null) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(paused), `the install never reached the snapshot: ${(finished as { stderr: string } | null)?.stderr}`).toBe(true);
    renameSync(data, `${data}.real`);
    symlinkSync(elsewhere, data);
    writeFileSync(path.join(pauseDir, 'data-snapshotted.resume'), '');
    const r = await running;
    expect(r.exitCode, r.stderr).toBe(5);
    expect(current()).toBe(was);
    expect(r.stdout).toMatch(/app data NOT restored: cannot restore \/var\/lib\/smolotchi\/data\/events\.db: .* is not a folder/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});
