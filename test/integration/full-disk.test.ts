import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseFiles } from '../../src/core/killpoint.js';
import { makeLayout } from '../../src/core/layout.js';
import { CLI } from '../support/cli.js';
import { makeCrashBox, pauseEnv, uniqueDir, type CrashBox } from '../support/crash-fixture.js';
import { checkInvariants, checkState, currentOf } from '../support/invariants.js';

/**
 * A small tmpfs as the whole sandbox root, filled to the brim at exact moments of an install
 * (extract, venv build, stamp, unit files, an SQLite write): current, units and services stay
 * untouched, staging goes, the error says "disk full", the history says why when it can. The
 * preflight refuses early; rollback and prune still work on a nearly full disk.
 */

const SIZE_MIB = 24;

function whyNot(): string | null {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  return null;
}
const skipReason = whyNot();
if (skipReason) console.warn(`skipping the full-disk tests: ${skipReason}`);

let box: CrashBox;
let mounted = false;
const FILLER = '.filler';

beforeAll(async () => {
  if (skipReason) return;
  box = await makeCrashBox('full-disk');
  for (const v of ['0.9.0', '1.0.0', '1.1.0']) expect((await box.cli(['install', v])).exitCode).toBe(0);
  box.saveTemplate('three');
  // The root itself is the mount point, at the path the template's venvs were built for.
  mkdirSync(box.root);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE_MIB}m,mode=0755`, 'smolotchi-test', box.root]);
  mounted = true;
});

afterAll(() => {
  if (mounted) {
    try {
      execFileSync('umount', [box.root]);
    } catch {
      execFileSync('umount', ['--lazy', box.root]); // a failed case may have left a paused CLI inside
    }
  }
  box?.cleanup();
});

function reset(): void {
  for (const name of readdirSync(box.root)) rmSync(path.join(box.root, name), { recursive: true, force: true });
  execFileSync('cp', ['-a', `${path.join(box.work, 'templates', 'three')}/.`, box.root]);
  writeFileSync(box.systemctl.log, '');
}

const freeBytes = () => {
  const s = statfsSync(box.root);
  return s.bavail * s.bsize;
};

/** Leave about `leave` bytes free: fallocate the rest, then top up by pages until ENOSPC if 0. */
function fill(leave: number): void {
  const file = path.join(box.root, FILLER);
  const want = Math.max(0, freeBytes() - leave);
  execFileSync('fallocate', ['-l', String(want), `${file}.1`]);
  if (leave > 0) return;
  try {
    for (let i = 0; ; i++) writeFileSync(`${file}.${i + 2}`, Buffer.alloc(4096));
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  }
}

function unfill(): void {
  for (const name of readdirSync(box.root)) if (name.startsWith(FILLER)) rmSync(path.join(box.root, name));
}

function unitSnapshot(): string {
  const dir = makeLayout(box.root).unitDir;
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(d, name.name);
      hash.update(path.relative(dir, full));
      if (name.isDirectory()) walk(full);
      else if (name.isFile()) hash.update(readFileSync(full));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

function lastInstall(): { status: string; error: string | null } | undefined {
  const db = new Database(makeLayout(box.root).historyDb, { readonly: true });
  try {
    return db.prepare("SELECT status, error FROM deploys WHERE kind = 'install' ORDER BY id DESC LIMIT 1").get() as { status: string; error: string | null };
  } finally {
    db.close();
  }
}

/** Service verbs that change what runs (show is a read). */
const serviceChanges = () => box.systemctl.calls().filter((c) => /\b(restart|start|stop|enable|disable|daemon-reload)\b/.test(c));

const FILL_POINTS: [string, string][] = [
  ['during extraction', 'staging-created'],
  // 2.0.0 changes a requirement: its venv is a clone of 1.1.0's that pip updates.
  ['during the venv build (pip on the cloned venv)', 'venv-cloned'],
  ['while the stamp is written', 'tree-synced'],
  ['while the unit files are written', 'write-units'],
  ['at an SQLite write', 'fetched'],
];

describe.skipIf(skipReason !== null)(`a ${SIZE_MIB} MiB tmpfs that fills up${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it.each(FILL_POINTS)('%s: nothing switched, staging removed, a clear error', async (what, point) => {
    reset();
    const units = unitSnapshot();
    const pauses = uniqueDir(box.work, 'pause');
    const run = execa(process.execPath, [CLI, 'release', 'install', '2.0.0', '--root', box.root, '--systemctl', box.systemctl.path], {
      reject: false,
      stdin: 'ignore',
      env: { NO_COLOR: '1', ...pauseEnv(pauses, point) },
    });
    const { paused, resume } = pauseFiles(pauses, point);
    // Wait for the pause point or the run's end, never for the clock (a loaded CI is slow, not wrong).
    // Node's ChildProcess.exitCode stays null while the process runs.
    while (!existsSync(paused) && run.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(paused)) throw new Error(`install never reached ${point}: ${(await run).stderr}`);
    fill(0);
    writeFileSync(resume, '');
    const r = await run;
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/smolotchi: disk full: .*(no space left on device|database or disk is full)/i);
    expect(r.stderr).toMatch(/hint: free space/);
    // Untouched: what runs, its units, the services.
    expect(currentOf(box.root)).toBe('1.1.0');
    expect(unitSnapshot()).toBe(units);
    expect(serviceChanges()).toEqual([]);
    const layout = makeLayout(box.root);
    expect(existsSync(layout.stagingDir) ? readdirSync(layout.stagingDir) : []).toEqual([]);
    // Built far enough to be complete (a full disk at the unit files): it stays, valid, not current.
    const kept = existsSync(path.join(layout.releasesDir, '2.0.0'));
    expect(kept).toBe(point === 'write-units');
    const row = lastInstall()!;
    if (row.status !== 'running') {
      expect(row.status).toBe('failed');
      expect(row.error).toMatch(/disk full/);
    }
    const said = r.stderr.split('\n').find((l) => l.startsWith('smolotchi:'));
    console.log(`[disk] full ${what}: exit ${r.exitCode}, history row ${row.status}; ${said}`);
    unfill();
    expect((await box.cli(['recover'])).exitCode).toBe(0);
    expect(await checkInvariants(box.root, (a) => box.cli(a), { allowed: ['1.1.0'], next: { install: ['2.0.0'] } })).toEqual([]);
  });

  it('the preflight refuses early (exit 1) when the estimate does not fit', async () => {
    reset();
    fill(2 * 1024 * 1024);
    const r = await box.cli(['install', '2.0.0']);
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/not enough free space to install 2\.0\.0: about [\d.]+ MiB needed on .* \(release .* \(tree size from git ls-tree\), venv .*, margin .*\), [\d.]+ MiB free/);
    const layout = makeLayout(box.root);
    expect(existsSync(layout.stagingDir) ? readdirSync(layout.stagingDir) : []).toEqual([]);
    expect(existsSync(path.join(layout.releasesDir, '2.0.0'))).toBe(false);
    expect(lastInstall()).toMatchObject({ status: 'failed', error: expect.stringMatching(/not enough free space/) });
    expect(serviceChanges()).toEqual([]);
    unfill();
  });

  it('rollback and prune still work on a nearly full disk', async () => {
    reset();
    fill(256 * 1024);
    const back = await box.cli(['rollback']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(currentOf(box.root)).toBe('1.0.0');
    const prune = await box.cli(['prune', '--keep', '1']);
    expect(prune.exitCode, prune.stderr).toBe(0);
    expect(JSON.parse((await box.cli(['list', '--json'])).stdout).releases.map((x: { version: string }) => x.version)).toEqual(['1.1.0', '1.0.0']);
    expect(checkState(box.root)).toEqual([]);
    expect(freeBytes()).toBeLessThan(2 * 1024 * 1024);
    unfill();
  });
});
