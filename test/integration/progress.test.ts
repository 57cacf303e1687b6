import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseFiles } from '../../src/core/killpoint.js';
import { makeLayout } from '../../src/core/layout.js';
import { readLock } from '../../src/core/state/lock.js';
import { CLI } from '../support/cli.js';
import { makeCrashBox, pauseEnv, uniqueDir, type CrashBox } from '../support/crash-fixture.js';
import { checkState, currentOf } from '../support/invariants.js';

/**
 * What an operator sees while a command runs (stderr), through the built CLI: plain timestamped
 * lines in a pipe or the journal, a live line on a terminal (a real pseudo-terminal from
 * util-linux's `script`), --quiet and --verbose, each fact once, and Ctrl-C/SIGTERM stopping at
 * a safe point with the lock released.
 */

let box: CrashBox;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/; // anything but \t and \n
/** util-linux's script(1) opens a real pseudo-terminal; without it the terminal cases skip, saying why. */
const noScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'script(1) from util-linux/bsdutils is not installed (.ci/run installs it)';
  }
})();
const onTty = noScript ? it.skip : it;
const ttyTitle = (title: string) => (noScript ? `${title} (skipped: ${noScript})` : title);

beforeAll(async () => {
  box = await makeCrashBox('progress');
  expect((await box.cli(['install', '1.0.0'])).exitCode).toBe(0);
  box.saveTemplate('one');
});

afterAll(() => box?.cleanup());

/** The CLI on a pseudo-terminal: what a person in a terminal sees (stdout and stderr mixed, as there). */
async function onTerminal(args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number; screen: string }> {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [process.execPath, CLI, 'release', ...args, '--root', box.root, '--systemctl', box.systemctl.path].map(quote).join(' ');
  const r = await execa('script', ['-qfec', command, '/dev/null'], { reject: false, stdin: 'ignore', env: { TERM: 'xterm', ...env }, extendEnv: true });
  return { exitCode: r.exitCode ?? -1, screen: r.stdout };
}

const linesOf = (stderr: string) => stderr.split('\n').filter(Boolean);

describe('progress in a pipe or the journal', () => {
  it('one timestamped plain line per step with its time, no control characters, every pipeline step', async () => {
    box.useTemplate('one');
    const r = await box.cli(['install', '2.0.0'], { env: { NO_COLOR: '' } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(CONTROL);
    for (const line of linesOf(r.stderr)) expect(line).toMatch(/^\d\d:\d\d:\d\d /);
    const steps = linesOf(r.stderr).map((l) => l.slice(9));
    for (const step of ['fetch', "venv: clone 1.0.0's and resolve the new requirements", 'venv: pip install 1 changed package (from wheels/)', 'venv: byte-compile', 'venv: smoke import',
      'units: unchanged (no rewrite, no daemon-reload)', 'switch current', 'restart core', 'restart ai, web, prune.timer', 'gate: units active', 'gate: settling 0 s', 'mark good', 'prune']) {
      expect(steps, r.stderr).toContainEqual(expect.stringMatching(new RegExp(`^${step.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: done in \\d+\\.\\ds$`)));
    }
    expect(r.stdout).not.toMatch(CONTROL);
  });

  onTty(ttyTitle('under systemd (JOURNAL_STREAM set) it stays plain even on a terminal'), async () => {
    box.useTemplate('one');
    const t = await onTerminal(['install', '1.1.0'], { JOURNAL_STREAM: '8:12345', NO_COLOR: '1' });
    expect(t.exitCode, t.screen).toBe(0);
    expect(t.screen.replaceAll('\r\n', '\n')).not.toMatch(CONTROL);
    expect(t.screen).toMatch(/^\d\d:\d\d:\d\d switch current: done in/m);
  });
});

describe('progress on a terminal', () => {
  onTty(ttyTitle('a live line redrawn in place, a ✓ per finished step, the status word in colour'), async () => {
    box.useTemplate('one');
    const t = await onTerminal(['install', '1.1.0'], { NO_COLOR: '' });
    expect(t.exitCode, t.screen).toBe(0);
    expect(t.screen).toContain('\r\x1b[2K'); // the live line is cleared and redrawn
    expect(t.screen).toMatch(/\x1b\[32m✓\x1b\[39m switch current/);
    expect(t.screen).toMatch(/\x1b\[32minstalled\x1b\[39m 1\.1\.0/);
  });

  onTty(ttyTitle('NO_COLOR and --no-color switch colour off; FORCE_COLOR forces it into a pipe'), async () => {
    box.useTemplate('one');
    const noColor = await onTerminal(['status'], { NO_COLOR: '1' });
    const flag = await onTerminal(['status', '--no-color'], { NO_COLOR: '' });
    for (const t of [noColor, flag]) {
      expect(t.exitCode, t.screen).toBe(0);
      expect(t.screen).not.toMatch(/\x1b\[3\dm/);
      expect(t.screen).toMatch(/^state: +ok/m);
    }
    const forced = await box.cli(['status'], { env: { NO_COLOR: '', FORCE_COLOR: '1' } });
    expect(forced.stdout).toMatch(/state: +\x1b\[32mok\x1b\[39m/);
  });
});

describe('--quiet and --verbose', () => {
  it('--quiet prints nothing on stderr when all goes well, and only the error when not', async () => {
    box.useTemplate('one');
    const ok = await box.cli(['install', '1.1.0', '--quiet']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stderr).toBe('');
    const bad = await box.cli(['install', '9.9.9', '--quiet']);
    expect(bad.exitCode).toBe(3);
    expect(linesOf(bad.stderr)[0]).toMatch(/^smolotchi: /);
    expect(linesOf(bad.stderr).every((l) => /^(smolotchi|hint): /.test(l))).toBe(true);
  });

  it("--verbose adds pip's own output and every systemctl call", async () => {
    box.useTemplate('one');
    const r = await box.cli(['install', '2.0.0', '--verbose']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Successfully installed demopkg-1\.0\.0|Installing collected packages: demopkg/);
    expect(r.stderr).toContain(`$ ${box.systemctl.path} --no-ask-password restart -- smolotchi-core.service`);
    // 2.0.0 ships the same units as 1.0.0: they are not rewritten, so systemd is not reloaded either.
    expect(r.stderr).toContain('units: unchanged (no rewrite, no daemon-reload): done in');
    expect(r.stderr).not.toContain(`$ ${box.systemctl.path} --no-ask-password daemon-reload`);
  });
});

describe('each fact once', () => {
  it('a failed gate, a prune and a cloned venv are each said once, across stdout and stderr', async () => {
    box.useTemplate('one');
    const upgrade = await box.cli(['install', '1.1.0']);
    const all = upgrade.stdout + upgrade.stderr;
    expect(all.match(/venv cloned from|venv: reused/g)).toHaveLength(1);
    const pruning = await box.cli(['install', '0.9.0', '--allow-downgrade']);
    expect(pruning.exitCode, pruning.stderr).toBe(0);
    const failing = await box.cli(['install', '1.2.0']);
    expect(failing.exitCode).toBe(5);
    const reasons = (failing.stdout + failing.stderr).match(/health-check failed/g);
    expect(reasons, failing.stdout + failing.stderr).toHaveLength(1);
    const pruned = await box.cli(['prune', '--keep', '1']);
    expect(pruned.exitCode, pruned.stderr).toBe(0);
    expect((pruned.stdout + pruned.stderr).match(/removed: /g)).toHaveLength(1);
    expect(pruned.stdout + pruned.stderr).not.toMatch(/^pruned /m);
  });
});

describe('times', () => {
  it('tables show local time with its zone and an age; JSON keeps ISO 8601 UTC', async () => {
    box.useTemplate('one');
    const text = await box.cli(['history'], { env: { TZ: 'Asia/Tokyo' } });
    expect(text.stdout).toMatch(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\+9 \((just now|\d+ s ago|\d+ min ago)\) /);
    const list = await box.cli(['list'], { env: { TZ: 'UTC' } });
    expect(list.stdout).toMatch(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(/);
    const json = await box.cli(['history', '--json'], { env: { TZ: 'Asia/Tokyo' } });
    const startedAt = (JSON.parse(json.stdout) as { deploys: { startedAt: string }[] }).deploys[0]!.startedAt;
    expect(startedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

describe('Ctrl-C and SIGTERM', () => {
  /** Start an install that pauses at `point`, send `signal` once it is there, then let it go on. */
  async function interrupt(point: string, signal: 'SIGINT' | 'SIGTERM', args: string[]) {
    const pauses = uniqueDir(box.work, 'pause');
    const run = execa(process.execPath, [CLI, 'release', ...args, '--root', box.root, '--systemctl', box.systemctl.path], {
      reject: false,
      stdin: 'ignore',
      env: { NO_COLOR: '1', ...pauseEnv(pauses, point) },
    });
    const files = pauseFiles(pauses, point);
    // Node's ChildProcess.exitCode stays null while the process runs.
    while (!existsSync(files.paused) && run.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(files.paused)) throw new Error(`never reached ${point}: ${(await run).stderr}`);
    const pid = Number(readFileSync(files.paused, 'utf8'));
    process.kill(pid, signal);
    writeFileSync(files.resume, '');
    return run;
  }

  it('SIGTERM during the fetch stops at the next step: exit 143, lock released, the next command cleans up', async () => {
    box.useTemplate('one');
    const r = await interrupt('fetch', 'SIGTERM', ['install', '1.1.0', '--json']);
    expect(r.exitCode, r.stderr).toBe(143);
    expect(r.stderr).toContain('smolotchi: interrupted at promote to releases/; the next command (or boot) finishes or undoes it');
    expect(JSON.parse(r.stdout)).toMatchObject({ command: 'install', error: { exitCode: 143 } });
    expect(readLock(makeLayout(box.root).lockFile)).toBeNull();
    expect(currentOf(box.root)).toBe('1.0.0');
    const next = await box.cli(['recover']);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stdout).toMatch(/deploy #\d+ \(install\) was interrupted at promote/);
    expect(checkState(box.root)).toEqual([]);
  });

  it('Ctrl-C after the switch stops before the restarts; the next command goes back, and nothing is marked bad', async () => {
    box.useTemplate('one');
    const r = await interrupt('flip', 'SIGINT', ['install', '1.1.0']);
    expect(r.exitCode, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^smolotchi: interrupted at restart; the next command \(or boot\) finishes or undoes it$/m);
    expect(readLock(makeLayout(box.root).lockFile)).toBeNull();
    const next = await box.cli(['recover']);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stdout).toContain('went back to 1.0.0');
    expect(currentOf(box.root)).toBe('1.0.0');
    const status = JSON.parse((await box.cli(['status', '--json'])).stdout) as { bad: string[] };
    expect(status.bad).toEqual([]);
    expect(checkState(box.root)).toEqual([]);
  });
});
