import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_GROUP_AT_STEP_ENV, TRACE_ENV } from '../../src/core/killpoint.js';
import { CLI } from '../support/cli.js';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { checkInvariants, currentOf } from '../support/invariants.js';

/**
 * The whole process group (the CLI and its git, python, pip and systemctl children) SIGKILLed at
 * random moments, many times, on one device whose state carries over from kill to kill. After
 * each kill: the next command's recovery, then I1-I7 (the next install and rollback succeed).
 * Moments are chosen by progress, never by the clock: the tool traces every step it reaches
 * (SMOLOTCHI_TEST_TRACE), an uncut run of each action tells how many steps it has, and a kill
 * lands at a random step N (exactly there, SMOLOTCHI_TEST_KILL_GROUP_AT_STEP) or, every other
 * time, at the first moment after step N while a child process runs. A slow machine gets the same
 * kills as a fast one. Seeded, so a failure can be replayed: SMOLOTCHI_RANDOM_SEED=<n>.
 */

const KILLS = Number(process.env.SMOLOTCHI_RANDOM_KILLS ?? 10);
const SEED = Number(process.env.SMOLOTCHI_RANDOM_SEED ?? Date.now() % 100_000);

/** mulberry32: small, seedable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// 2.0.0 builds a fresh venv with pip; 1.1.0 and 1.0.0 clone one (when on disk they just switch).
const ACTIONS: string[][] = [
  ['install', '2.0.0', '--allow-downgrade'],
  ['install', '1.1.0', '--allow-downgrade'],
  ['install', '1.0.0', '--allow-downgrade'],
  ['install', '1.2.0', '--allow-downgrade', '--force'],
  ['rollback'],
  ['prune', '--keep', '1'],
  ['recover'],
];

let box: CrashBox;
const stats = { killed: 0, finished: 0, survived: 0, inChild: 0, children: new Map<string, number>() };
const started = Date.now();

beforeAll(async () => {
  // keep 2: installs prune as they go, so later installs fetch, extract and build again.
  box = await makeCrashBox('random-kills', { SMOLOTCHI_RELEASE_KEEP: 2 });
  for (const v of ['1.0.0', '1.1.0']) expect((await box.cli(['install', v])).exitCode).toBe(0);
});

afterAll(() => {
  console.log(
    `[crash] random kills: ${stats.survived}/${stats.killed} survived (I1-I7 after recovery); ${stats.inChild} while a child ran ` +
      `(${[...stats.children].map(([n, c]) => `${n} ${c}`).join(', ')}); ${stats.finished} runs finished first; seed ${SEED}; ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  box?.cleanup();
});

/** Names of the other processes in the group right now (git, python3, sh for systemctl, sync). */
async function children(pgid: number): Promise<string[]> {
  const r = await execa('pgrep', ['-l', '-g', String(pgid)], { reject: false });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([pid]) => pid && Number(pid) !== pgid)
    .map(([, name]) => name ?? '?');
}

const releasesOnDisk = (): string => (existsSync(path.join(box.root, 'opt/smolotchi/releases')) ? readdirSync(path.join(box.root, 'opt/smolotchi/releases')).sort().join(',') : '');
const stepsIn = (trace: string): string[] => (existsSync(trace) ? readFileSync(trace, 'utf8').split('\n').filter(Boolean) : []);

type Outcome = { killed: boolean; hit: string[]; steps: string[] };

/**
 * Run one command in its own process group. `at` null: uncut (to learn its steps). Otherwise the
 * group dies at step `at.step`: exactly there, or (`inChild`) at the first moment after it while
 * a child process runs.
 */
async function runAndKill(args: string[], at: { step: number; inChild: boolean } | null): Promise<Outcome> {
  const trace = path.join(mkdtempSync(path.join(box.work, 'trace-')), 'steps');
  const env: Record<string, string> = { NO_COLOR: '1', [TRACE_ENV]: trace };
  if (at && !at.inChild) env[KILL_GROUP_AT_STEP_ENV] = String(at.step);
  const child = execa(process.execPath, [CLI, 'release', ...args, '--root', box.root, '--systemctl', box.systemctl.path], {
    detached: true, // its own process group: the kill takes git, tar, pip and systemctl with it
    reject: false,
    stdin: 'ignore',
    env,
  });
  let done = false;
  let hit: string[] = [];
  const killer = (async () => {
    if (!at?.inChild) return;
    // Polling the trace and the process table: the moment is set by progress, the poll only finds it.
    while (!done) {
      if (stepsIn(trace).length >= at.step) {
        const names = await children(child.pid!).catch(() => []);
        if (done) return;
        if (names.length > 0) {
          try {
            process.kill(-child.pid!, 'SIGKILL');
            hit = names;
          } catch {
            /* already gone */
          }
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const r = await child;
  done = true;
  await killer;
  return { killed: r.signal === 'SIGKILL', hit: r.signal === 'SIGKILL' ? hit : [], steps: stepsIn(trace) };
}

describe('random SIGKILLs of the whole process group', () => {
  it(`survives ${KILLS} kills at random steps (seed ${SEED})`, async () => {
    const random = rng(SEED);
    // How many steps each action took uncut, per device state (current release): kills aim inside.
    const learned = new Map<string, number>();
    // A run that ends before its chosen moment (a shorter path this time) is retried with another pick.
    for (let i = 0; stats.killed < KILLS && i < KILLS * 8; i++) {
      const args = ACTIONS[Math.floor(random() * ACTIONS.length)]!;
      const before = currentOf(box.root);
      const key = `${args.join(' ')} @ ${before} of ${releasesOnDisk()}`;
      const total = learned.get(key);
      if (total === undefined) {
        learned.set(key, (await runAndKill(args, null)).steps.length);
        stats.finished++;
        continue;
      }
      if (total === 0) continue;
      // Every other kill aims at a moment when a child (git, python, pip, systemctl) runs.
      const at = { step: 1 + Math.floor(random() * total), inChild: random() < 0.5 };
      const outcome = await runAndKill(args, at);
      if (!outcome.killed) {
        learned.set(key, outcome.steps.length);
        stats.finished++;
        continue;
      }
      stats.killed++;
      for (const name of new Set(outcome.hit)) stats.children.set(name, (stats.children.get(name) ?? 0) + 1);
      if (outcome.hit.length) stats.inChild++;
      const last = outcome.steps[outcome.steps.length - 1] ?? '(start)';
      const when = at.inChild ? `after step ${at.step} (${last}) while ${outcome.hit.join(', ')} ran` : `at step ${at.step} (${last})`;
      const label = `iteration ${i}: ${args.join(' ')} killed ${when} (seed ${SEED})`;
      // The commands after a kill run in the test process (box.run), after the first kill through the CLI.
      const cli = (a: string[]) => (stats.killed === 1 ? box.cli(a) : box.run(a));
      const recovered = await cli(['recover']);
      expect(recovered.exitCode, `${label}: recover: ${recovered.stderr}`).toBe(0);
      const after = currentOf(box.root);
      const target = args[0] === 'install' ? args[1]! : null;
      const allowed = target ? [before, target] : [before, after];
      // I7 on this same device: the next install (alternating targets) and a rollback succeed.
      const next = before === '1.1.0' ? '2.0.0' : '1.1.0';
      const problems = await checkInvariants(box.root, cli, { allowed, old: before, next: { install: [next] } });
      expect(problems, label).toEqual([]);
      stats.survived++;
    }
    expect(stats.killed).toBe(KILLS);
    // A count of kills, not a time budget: a loaded machine takes longer, never does less.
  }, 900_000);
});
