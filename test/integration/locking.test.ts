import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseFiles } from '../../src/core/killpoint.js';
import { makeLayout } from '../../src/core/layout.js';
import { acquireLock, readLock, type LockInfo } from '../../src/core/state/lock.js';
import { bootId, hostName, processStartTime } from '../../src/core/state/proc.js';
import { CLI, HANG_GUARD_MS } from '../support/cli.js';
import { makeCrashBox, pauseEnv, uniqueDir, type CrashBox } from '../support/crash-fixture.js';
import { checkState, currentOf } from '../support/invariants.js';

/** One lock for every mutating command: exclusive, never stolen from the living, taken from the dead. */

let box: CrashBox;
let lockFile: string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  box = await makeCrashBox('locking');
  expect((await box.cli(['install', '1.0.0'])).exitCode).toBe(0);
  box.saveTemplate('one');
  lockFile = makeLayout(box.root).lockFile;
});

afterAll(() => box?.cleanup());

function spawnCli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [CLI, 'release', ...args, '--root', box.root, '--systemctl', box.systemctl.path], {
    reject: false,
    stdin: 'ignore',
    env: { NO_COLOR: '1', ...env },
  });
}

/** Wait for an event the runs make true; the deadline is only a hang guard (a loaded CI never meets it). */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  const guard = Date.now() + HANG_GUARD_MS;
  while (!check()) {
    if (Date.now() > guard) throw new Error(`hang guard: still waiting for ${what} after ${HANG_GUARD_MS / 1000} s`);
    await sleep(20);
  }
}

const resume = (dir: string, point: string) => writeFileSync(pauseFiles(dir, point).resume, '');
const isPaused = (dir: string, point: string) => existsSync(pauseFiles(dir, point).paused);

function writeLockFile(info: Partial<LockInfo>): void {
  const full: LockInfo = { pid: 1, startTime: '1', bootId: bootId(), host: hostName(), purpose: 'install 9.9.9', since: new Date().toISOString(), ...info };
  rmSync(path.dirname(lockFile), { recursive: true, force: true });
  mkdirSync(path.dirname(lockFile), { recursive: true });
  writeFileSync(lockFile, JSON.stringify(full));
}

describe('eight simultaneous installs', () => {
  it('exactly one proceeds; the seven others exit 75 at once (no waiting), naming the holder', async () => {
    box.useTemplate('one');
    const pauses = uniqueDir(box.work, 'pause');
    const runs = Array.from({ length: 8 }, () => {
      const p = spawnCli(['install', '1.1.0'], pauseEnv(pauses, 'lock-acquired', 'lock-waiting'));
      return { p, result: undefined as Awaited<typeof p> | undefined };
    });
    for (const r of runs) void r.p.then((res) => (r.result = res));
    // The winner stops right after taking the lock; everyone else must give up meanwhile, and
    // without --wait none of them may start waiting (a waiter would stop at lock-waiting).
    // How fast the refusals come is a figure for `npm run bench`, not a test.
    await waitFor(() => isPaused(pauses, 'lock-acquired') && runs.filter((r) => r.result).length === 7, 'one holder and seven refusals');
    const winnerPid = Number(readFileSync(pauseFiles(pauses, 'lock-acquired').paused, 'utf8'));
    const losers = runs.filter((r) => r.result);
    for (const l of losers) {
      expect(l.result!.exitCode, l.result!.stderr).toBe(75);
      expect(l.result!.stderr).toMatch(new RegExp(`pid ${winnerPid} \\(install 1\\.1\\.0\\) on \\S+ since \\d{4}-\\d\\d-\\d\\dT`));
      expect(l.result!.stderr).toMatch(/--wait/);
    }
    expect(isPaused(pauses, 'lock-waiting')).toBe(false);
    resume(pauses, 'lock-acquired');
    const winner = runs.find((r) => r.result === undefined)!;
    const done = await winner.p;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(winner.p.pid).toBe(winnerPid);
    expect(currentOf(box.root)).toBe('1.1.0');
    expect(checkState(box.root)).toEqual([]);
    const history = JSON.parse((await box.cli(['history', '--json'])).stdout) as { deploys: { kind: string; toVersion: string }[] };
    expect(history.deploys.filter((d) => d.kind === 'install' && d.toVersion === '1.1.0')).toHaveLength(1);
  });
});

describe('--wait', () => {
  it('waits for a live holder, then proceeds', async () => {
    box.useTemplate('one');
    const held = await acquireLock(lockFile, { purpose: 'test holder' });
    const pauses = uniqueDir(box.work, 'pause');
    const run = spawnCli(['install', '1.1.0', '--wait=600'], pauseEnv(pauses, 'lock-waiting'));
    await waitFor(() => isPaused(pauses, 'lock-waiting'), 'the second install to start waiting');
    expect(readLock(lockFile)?.pid).toBe(process.pid); // still ours: the waiter did not take it
    held.release();
    resume(pauses, 'lock-waiting');
    const r = await run;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(currentOf(box.root)).toBe('1.1.0');
  });

  it('--wait N gives up with exit 75 while the holder still holds it', async () => {
    box.useTemplate('one');
    const held = await acquireLock(lockFile, { purpose: 'test holder' });
    try {
      const pauses = uniqueDir(box.work, 'pause');
      const run = spawnCli(['rollback', '--wait=1'], pauseEnv(pauses, 'lock-waiting'));
      await waitFor(() => isPaused(pauses, 'lock-waiting'), 'the rollback to start waiting');
      resume(pauses, 'lock-waiting');
      const r = await run;
      expect(r.exitCode, r.stderr).toBe(75);
      expect(r.stderr).toMatch(new RegExp(`pid ${process.pid} \\(test holder\\)`));
      expect(readLock(lockFile)?.pid).toBe(process.pid);
    } finally {
      held.release();
    }
  });
});

describe('init', () => {
  it('takes the lock too: exit 75 while another command holds it, with nothing written; --dry-run needs none', async () => {
    box.useTemplate('one');
    const bootUnit = path.join(makeLayout(box.root).unitDir, 'smolotchi-release-check.service');
    rmSync(bootUnit, { force: true });
    const held = await acquireLock(lockFile, { purpose: 'test holder' });
    try {
      const refused = await spawnCli(['init']);
      expect(refused.exitCode, refused.stderr).toBe(75);
      expect(refused.stderr).toMatch(new RegExp(`pid ${process.pid} \\(test holder\\)`));
      expect(existsSync(bootUnit)).toBe(false);
      const dry = await spawnCli(['init', '--dry-run']);
      expect(dry.exitCode, dry.stderr).toBe(0);
    } finally {
      held.release();
    }
    const r = await spawnCli(['init']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(bootUnit)).toBe(true);
    expect(existsSync(lockFile)).toBe(false); // released on the way out
  });
});

describe('install latest', () => {
  it('asks the source only under the lock: a second one exits 75 without touching the git mirror', async () => {
    box.useTemplate('one');
    // A tag published upstream meanwhile: a sync before the lock would bring it into the mirror.
    await execa('git', ['tag', 'v9.9.0', 'v1.1.0'], { cwd: box.repo });
    const held = await acquireLock(lockFile, { purpose: 'test holder' });
    try {
      const r = await spawnCli(['install', 'latest']);
      expect(r.exitCode, r.stderr).toBe(75);
      const mirrorTags = await execa('git', ['--git-dir', makeLayout(box.root).mirrorDir, 'tag', '-l', 'v9.9.0']);
      expect(mirrorTags.stdout).toBe('');
    } finally {
      held.release();
      await execa('git', ['tag', '-d', 'v9.9.0'], { cwd: box.repo });
    }
  });
});

describe('dead and live holders', () => {
  it('a SIGKILLed holder’s lock is taken over by the next command without --force', async () => {
    box.useTemplate('one');
    const killed = await box.cli(['install', '1.1.0'], { killAt: 'lock-acquired' });
    expect(killed.signal).toBe('SIGKILL');
    const stale = readLock(lockFile);
    expect(stale?.purpose).toBe('install 1.1.0');
    const r = await box.cli(['install', '1.1.0']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
    expect(checkState(box.root, { allowed: ['1.1.0'] })).toEqual([]);
  });

  it.each([
    ['pid 1 with another start time (a reused pid)', () => ({ pid: 1, startTime: String(Number(processStartTime(1) ?? 0) + 12345) })],
    ['this live process with a fake start time', () => ({ pid: process.pid, startTime: '1' })],
    ['a pid that does not exist', () => ({ pid: 2 ** 22 + 17, startTime: '5' })],
  ])('a lock naming %s is recognised as dead', async (_what, info) => {
    box.useTemplate('one');
    writeLockFile(info());
    const r = await box.cli(['install', '1.1.0']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });

  // The lock is written without fsync: only a power cut can leave it empty or torn, and then its holder is gone.
  it.each([
    ['empty', ''],
    ['torn', '{"pid": 4'],
  ])('a lock file left %s is taken over as having no holder', async (_what, content) => {
    box.useTemplate('one');
    rmSync(path.dirname(lockFile), { recursive: true, force: true });
    mkdirSync(path.dirname(lockFile), { recursive: true });
    writeFileSync(lockFile, content);
    const r = await box.cli(['install', '1.1.0']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });

  it.each([
    ['another boot', { bootId: '00000000-dead-beef-0000-000000000000' }],
    ['another host', { host: 'other-device' }],
  ])('a lock from %s is never taken over without --force; `recover --force` takes it', async (_what, where) => {
    box.useTemplate('one');
    writeLockFile({ pid: process.pid, startTime: processStartTime(process.pid), ...where });
    const before = readFileSync(lockFile, 'utf8');
    for (const args of [['install', '1.1.0'], ['rollback'], ['recover']]) {
      const r = await box.cli(args);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(75);
      expect(r.stderr).toMatch(/taken on another host or boot: .*boot id/);
      expect(r.stderr).toMatch(/recover --force/);
    }
    expect(readFileSync(lockFile, 'utf8')).toBe(before);
    expect(currentOf(box.root)).toBe('1.0.0');
    const forced = await box.cli(['recover', '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
    expect((await box.cli(['install', '1.1.0'])).exitCode).toBe(0);
  });

  it('a live holder is never robbed, however old its lock', async () => {
    box.useTemplate('one');
    // This very process, its real start time, a lock taken "years ago": alive, so held.
    writeLockFile({ pid: process.pid, startTime: processStartTime(process.pid), purpose: 'install 9.9.9 (slow pip)', since: '2020-01-01T00:00:00.000Z' });
    const before = readFileSync(lockFile, 'utf8');
    for (const args of [['install', '1.1.0'], ['rollback'], ['prune'], ['recover']]) {
      const r = await box.cli(args);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(75);
      expect(r.stderr).toMatch(new RegExp(`pid ${process.pid} \\(install 9\\.9\\.9 \\(slow pip\\)\\) on \\S+ since 2020-01-01`));
    }
    expect(readFileSync(lockFile, 'utf8')).toBe(before);
    expect(currentOf(box.root)).toBe('1.0.0');
    rmSync(lockFile);
  });
});

describe('runtime directories removed under a holder', () => {
  it("the app's /run/smolotchi vanishing leaves the lock alone; reassert() puts it back if its own folder went", async () => {
    box.useTemplate('one');
    const lock = await acquireLock(lockFile, { purpose: 'install 1.1.0' });
    rmSync(makeLayout(box.root).runDir, { recursive: true, force: true }); // what systemd does on stop
    expect(readLock(lockFile)).toEqual(lock.info);
    rmSync(makeLayout(box.root).toolRunDir, { recursive: true, force: true });
    expect(existsSync(lockFile)).toBe(false);
    lock.reassert();
    expect(readLock(lockFile)).toEqual(lock.info);
    await expect(acquireLock(lockFile, { purpose: 'second' })).rejects.toMatchObject({ exitCode: 75 });
    lock.release();
    expect(existsSync(lockFile)).toBe(false);
  });

  it('an install re-asserts its lock after its restarts removed it', async () => {
    box.useTemplate('one');
    const pauses = uniqueDir(box.work, 'pause');
    const run = spawnCli(['install', '1.1.0'], pauseEnv(pauses, 'restarted:smolotchi-core.service', 'lock-reasserted'));
    await waitFor(() => isPaused(pauses, 'restarted:smolotchi-core.service'), 'the first restart');
    rmSync(makeLayout(box.root).runDir, { recursive: true, force: true });
    resume(pauses, 'restarted:smolotchi-core.service');
    await waitFor(() => isPaused(pauses, 'lock-reasserted'), 'the lock to be re-asserted');
    expect(readLock(lockFile)?.pid).toBe(run.pid);
    const other = await box.cli(['install', '2.0.0']);
    expect(other.exitCode, other.stderr).toBe(75);
    resume(pauses, 'lock-reasserted');
    const r = await run;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });
});

describe('read-only commands', () => {
  it('history, list and status never wait for the lock and work while it is held', async () => {
    box.useTemplate('one');
    // Held for the whole test: a command that waited for it would never finish (the test would time out).
    const held = await acquireLock(lockFile, { purpose: 'install 9.9.9' });
    try {
      for (const cmd of ['history', 'list', 'status']) {
        const r = await box.cli([cmd, '--json']);
        expect(r.exitCode, `${cmd}: ${r.stderr}`).toBe(0);
        if (cmd === 'status') expect(JSON.parse(r.stdout).lock).toMatchObject({ pid: process.pid, purpose: 'install 9.9.9', alive: true });
      }
    } finally {
      held.release();
    }
  });

  it('… and during a real install, which they show as running', async () => {
    box.useTemplate('one');
    const pauses = uniqueDir(box.work, 'pause');
    const run = spawnCli(['install', '2.0.0'], pauseEnv(pauses, 'venv'));
    await waitFor(() => isPaused(pauses, 'venv'), 'the install to reach its venv step');
    const status = await box.cli(['status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ current: '1.0.0', lock: { pid: run.pid, purpose: 'install 2.0.0', alive: true } });
    const history = await box.cli(['history', '--json']);
    expect(JSON.parse(history.stdout).deploys[0]).toMatchObject({ kind: 'install', status: 'running', step: 'venv', toVersion: '2.0.0' });
    const list = await box.cli(['list', '--json']);
    expect(list.exitCode).toBe(0);
    resume(pauses, 'venv');
    expect((await run).exitCode).toBe(0);
  });
});
