import Database from 'better-sqlite3';
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLayout, type Layout } from '../../src/core/layout.js';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { checkState, currentOf } from '../support/invariants.js';

/**
 * The tool's own history and lock live in root-only folders that are checked before use and never
 * written through a link; the old, service-user-writable history is untrusted input. Each attack
 * is performed for real under --root and must leave the victim file, the history and `current`
 * as they were.
 */

let box: CrashBox;
let layout: Layout;
let victim: string;
const VICTIM_TEXT = 'root-only secret\n';
const uid = process.getuid!();

beforeAll(async () => {
  box = await makeCrashBox('toolstate');
  for (const v of ['1.0.0', '1.1.0']) expect((await box.cli(['install', v])).exitCode).toBe(0);
  box.saveTemplate('two');
  layout = makeLayout(box.root);
});
afterAll(() => box?.cleanup());

/** A fresh case: the two-release root, and a victim file outside it that no command may touch. */
function freshCase(): void {
  box.useTemplate('two');
  victim = path.join(box.work, 'victim');
  writeFileSync(victim, VICTIM_TEXT, { mode: 0o600 });
}

/** The regular files of the history folder (no link followed), by name. */
function historyFiles(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!lstatSync(layout.toolStateDir).isDirectory()) return out;
  for (const name of readdirSync(layout.toolStateDir)) {
    const file = path.join(layout.toolStateDir, name);
    // -shm is SQLite's shared-memory index, rewritten by every reader: not content.
    if (lstatSync(file).isFile() && !name.endsWith('-shm')) out.set(name, readFileSync(file));
  }
  return out;
}

const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe('root-only folders for the history and the lock', () => {
  it('history in /var/lib/smolotchi/release (0700), lock in /run/smolotchi-release (0700), nothing at the old places', async () => {
    freshCase();
    expect(layout.historyDb).toBe(path.join(box.root, 'var/lib/smolotchi/release/releases.db'));
    expect(layout.lockFile).toBe(path.join(box.root, 'run/smolotchi-release/release.lock'));
    expect(modeOf(layout.toolStateDir)).toBe(0o700);
    expect(statSync(layout.toolStateDir).uid).toBe(uid);
    expect(existsSync(layout.historyDb)).toBe(true);
    expect(existsSync(layout.legacyHistoryDb)).toBe(false);
    expect((await box.cli(['prune', '--keep', '5'])).exitCode).toBe(0);
    expect(modeOf(layout.toolRunDir)).toBe(0o700);
    expect(existsSync(path.join(layout.locksDir, 'release.lock'))).toBe(false);
  });
});

describe('planted links and loose folders are refused with exit 4; victim, history and current unchanged', () => {
  const cases: [string, () => void, RegExp][] = [
    ['a symlink -wal beside the history', () => (rmSync(`${layout.historyDb}-wal`, { force: true }), symlinkSync(victim, `${layout.historyDb}-wal`)), /releases\.db-wal is a symlink/],
    ['a symlink -shm beside the history', () => (rmSync(`${layout.historyDb}-shm`, { force: true }), symlinkSync(victim, `${layout.historyDb}-shm`)), /releases\.db-shm is a symlink/],
    ['a symlink in place of the history', () => (rmSync(layout.historyDb), symlinkSync(victim, layout.historyDb)), /releases\.db is a symlink/],
    ['a symlink bad-marks sidecar', () => symlinkSync(victim, layout.badMarksFile), /bad-marks\.json is a symlink/],
    [
      'the history folder swapped for a link to a folder someone else filled',
      () => {
        const fake = path.join(box.work, 'fake-state');
        rmSync(fake, { recursive: true, force: true });
        mkdirSync(fake);
        symlinkSync(victim, path.join(fake, 'releases.db-wal'));
        rmSync(layout.toolStateDir, { recursive: true });
        symlinkSync(fake, layout.toolStateDir);
      },
      /history folder .* is a symlink or not a folder/,
    ],
    ['a group-writable history folder', () => chmodSync(layout.toolStateDir, 0o770), /history folder .* is writable by group or others \(mode 770\)/],
    ['a history folder owned by another user', () => chownSync(layout.toolStateDir, 65534, 65534), /history folder .* is owned by uid 65534, not root/],
    [
      'the lock folder as a link to a folder someone else owns',
      () => {
        const fake = path.join(box.work, 'fake-run');
        rmSync(fake, { recursive: true, force: true });
        mkdirSync(fake);
        symlinkSync(victim, path.join(fake, 'release.lock.json'));
        mkdirSync(path.dirname(layout.toolRunDir), { recursive: true });
        rmSync(layout.toolRunDir, { recursive: true, force: true });
        symlinkSync(fake, layout.toolRunDir);
      },
      /lock folder .* is a symlink or not a folder/,
    ],
    [
      'a world-writable lock folder',
      () => {
        mkdirSync(layout.toolRunDir, { recursive: true });
        chmodSync(layout.toolRunDir, 0o777);
      },
      /lock folder .* is writable by group or others/,
    ],
  ];

  it.each(cases)('%s', async (_what, plant, message) => {
    freshCase();
    const before = historyFiles();
    plant();
    for (const args of [['install', '2.0.0'], ['recover']]) {
      const r = await box.cli(args);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/hint: /);
    }
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(modeOf(victim)).toBe(0o600);
    expect(currentOf(box.root)).toBe('1.1.0');
    expect(existsSync(path.join(layout.releasesDir, '2.0.0'))).toBe(false);
    // Every history file still in place holds exactly what it held before.
    const after = historyFiles();
    // A reader may leave SQLite's empty -wal and its -shm index beside the file: they hold no history.
    for (const [name, bytes] of after) {
      if (!before.has(name) && (/-shm$/.test(name) || (/-wal$/.test(name) && bytes.length === 0))) continue;
      expect(bytes, name).toEqual(before.get(name));
    }
  });

  it('a symlink planted as the lock sidecar is replaced, never written through', async () => {
    freshCase();
    mkdirSync(layout.toolRunDir, { recursive: true, mode: 0o700 });
    symlinkSync(victim, `${layout.lockFile}.json`);
    const r = await box.cli(['rollback']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(existsSync(`${layout.lockFile}.json`)).toBe(false);
  });
});

/** A history as an older tool left it at /var/lib/smolotchi/releases.db, then forged by the service user. */
function forgeLegacyHistory(): void {
  renameSync(layout.historyDb, layout.legacyHistoryDb);
  for (const suffix of ['-wal', '-shm']) if (existsSync(layout.historyDb + suffix)) renameSync(layout.historyDb + suffix, layout.legacyHistoryDb + suffix);
  rmSync(layout.toolStateDir, { recursive: true, force: true });
  const db = new Database(layout.legacyHistoryDb);
  const now = new Date().toISOString();
  // A "running" install that switched 1.0.0 -> 1.1.0 and never passed its gate: trusted, recovery
  // would force the device back to 1.0.0.
  db.prepare("DELETE FROM release_marks WHERE version = '1.1.0'").run();
  db.prepare(
    "INSERT INTO deploys (kind, from_version, to_version, status, step, started_at, user, pid) VALUES ('install', '1.0.0', '1.1.0', 'running', 'health-gate', ?, 'root', 1)",
  ).run(now);
  db.prepare("INSERT OR REPLACE INTO release_marks (version, state, reason, marked_at) VALUES ('0.9.0', 'bad', 'forged by the service user', ?)").run(now);
  db.prepare('DELETE FROM tag_commits').run();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  chownSync(layout.legacyHistoryDb, 65534, 65534); // what StateDirectory= did to it
}

describe('the old history at /var/lib/smolotchi/releases.db is untrusted input', () => {
  it('a forged running row cannot force a downgrade; links beside it are not followed; only bad marks cross over', async () => {
    freshCase();
    forgeLegacyHistory();
    for (const suffix of ['-wal', '-shm']) symlinkSync(victim, layout.legacyHistoryDb + suffix);
    const legacyBytes = readFileSync(layout.legacyHistoryDb);

    const r = await box.cli(['recover']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/was writable by the service user, so it is not trusted/);
    expect(currentOf(box.root)).toBe('1.1.0');
    expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect(readFileSync(layout.legacyHistoryDb)).toEqual(legacyBytes);

    const status = JSON.parse((await box.cli(['status', '--json'])).stdout);
    expect(status).toMatchObject({ current: '1.1.0', lastGood: '1.1.0', bad: ['0.9.0'] });
    const deploys = JSON.parse((await box.cli(['history', '--json'])).stdout).deploys as { kind: string; status: string; error: string }[];
    expect(deploys.map((d) => d.status)).not.toContain('interrupted');
    expect(deploys[0]!.error).toMatch(/read-only copy is kept as .*legacy-releases\.db.*1 bad mark\(s\) kept.*2 tag commit\(s\) restored from release stamps.*1\.1\.0 \(current\) marked good/);
    const archive = path.join(layout.toolStateDir, 'legacy-releases.db');
    expect(modeOf(archive)).toBe(0o400);
    expect(checkState(box.root)).toEqual([]);

    // The forged bad mark only refuses: --force overrides it.
    expect((await box.cli(['install', '0.9.0', '--allow-downgrade'])).exitCode).toBe(1);
    expect((await box.cli(['install', '0.9.0', '--allow-downgrade', '--force'])).exitCode).toBe(0);
  });
});

describe('a rebuilt history keeps its bad marks', () => {
  it('1.2.0 failed its gate; the history is corrupted; the rebuilt one still refuses 1.2.0 without --force', async () => {
    freshCase();
    const failed = await box.cli(['install', '1.2.0']);
    expect(failed.exitCode, failed.stderr).toBe(5);
    expect(JSON.parse(readFileSync(layout.badMarksFile, 'utf8'))).toHaveProperty(['1.2.0']);
    for (const suffix of ['-wal', '-shm']) rmSync(layout.historyDb + suffix, { force: true });
    writeFileSync(layout.historyDb, Buffer.alloc(8192, 0x5a));

    const again = await box.cli(['install', '1.2.0']);
    expect(again.exitCode, again.stderr).toBe(1);
    expect(again.stderr).toMatch(/moved it to .*corrupt/);
    expect(again.stderr).toMatch(/1\.2\.0 .*marked bad/);
    expect(JSON.parse((await box.cli(['status', '--json'])).stdout)).toMatchObject({ current: '1.1.0', bad: ['1.2.0'] });
    expect(currentOf(box.root)).toBe('1.1.0');
  });

  it('a good mark clears the sidecar entry', async () => {
    freshCase();
    writeFileSync(layout.badMarksFile, JSON.stringify({ '1.0.0': 'old failure' }), { mode: 0o600 });
    copyFileSync(layout.badMarksFile, `${layout.badMarksFile}.before`);
    const r = await box.cli(['rollback', '--to', '1.0.0']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(layout.badMarksFile, 'utf8'))).toEqual({});
  });
});
