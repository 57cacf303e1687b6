import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../support/cli.js';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { checkInvariants, currentOf } from '../support/invariants.js';

/**
 * The whole process group (the CLI and its git, python, pip and systemctl children) SIGKILLed at
 * random moments, many times, on one device whose state carries over from kill to kill. After
 * each kill: the next command's recovery, then I1-I7 (the next install and rollback succeed).
 * Seeded, so a failure can be replayed: SMOLOTCHI_RANDOM_SEED=<n>.
 */

const ITERATIONS = Number(process.env.SMOLOTCHI_RANDOM_KILLS ?? 40);
const BUDGET_MS = Number(process.env.SMOLOTCHI_RANDOM_BUDGET_MS ?? 60_000);
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

interface Action {
  args: string[];
  /** Rough duration of the uncut command: kills land in [0, this]. */
  ms: number;
}

// 2.0.0 builds a fresh venv with pip; 1.1.0 and 1.0.0 clone one (when on disk they just switch).
const ACTIONS: Action[] = [
  { args: ['install', '2.0.0', '--allow-downgrade'], ms: 2500 },
  { args: ['install', '1.1.0', '--allow-downgrade'], ms: 800 },
  { args: ['install', '1.0.0', '--allow-downgrade'], ms: 800 },
  { args: ['install', '1.2.0', '--allow-downgrade', '--force'], ms: 1200 },
  { args: ['rollback'], ms: 500 },
  { args: ['prune', '--keep', '1'], ms: 300 },
  { args: ['recover'], ms: 250 },
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

type Outcome = { killed: boolean; hit: string[] };

/**
 * Run one command in its own process group and SIGKILL the group: after `delayMs`, or (when
 * `inChild`) at a random moment while a child process (git, pip, ...) is running.
 */
async function runAndKill(action: Action, delayMs: number, inChild: boolean, random: () => number): Promise<Outcome> {
  const child = execa(process.execPath, [CLI, 'release', ...action.args, '--root', box.root, '--systemctl', box.systemctl.path], {
    detached: true, // its own process group: the kill takes git, tar, pip and systemctl with it
    reject: false,
    stdin: 'ignore',
    env: { NO_COLOR: '1' },
  });
  let done = false;
  let hit: string[] = [];
  let killedByUs = false;
  const kill = (names: string[]) => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
      killedByUs = true;
      hit = names;
    } catch {
      /* already gone */
    }
  };
  const killer = (async () => {
    if (!inChild) {
      await new Promise((r) => setTimeout(r, delayMs));
      if (!done) kill(await children(child.pid!).catch(() => []));
      return;
    }
    while (!done) {
      const names = await children(child.pid!).catch(() => []);
      if (done) return;
      if (names.length > 0 && random() < 0.5) return kill(names);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const r = await child;
  done = true;
  await killer;
  const killed = killedByUs && r.signal === 'SIGKILL';
  return { killed, hit: killed ? hit : [] };
}

describe('random SIGKILLs of the whole process group', () => {
  it(`survives up to ${ITERATIONS} random kills in ${BUDGET_MS / 1000} s (seed ${SEED})`, async () => {
    const random = rng(SEED);
    // How long each action last took uncut on this device state: kills aim inside that window.
    const learned = new Map<Action, number>();
    for (let i = 0; stats.killed < ITERATIONS && Date.now() - started < BUDGET_MS; i++) {
      const action = ACTIONS[Math.floor(random() * ACTIONS.length)]!;
      const delay = Math.floor(random() * Math.min(action.ms, learned.get(action) ?? action.ms));
      const before = currentOf(box.root);
      const t0 = Date.now();
      // Every other kill aims at a moment when a child (git, python, pip, systemctl) runs.
      const aimAtChild = random() < 0.5;
      const outcome = await runAndKill(action, delay, aimAtChild, random);
      if (!outcome.killed) {
        if (!aimAtChild) learned.set(action, Date.now() - t0);
        stats.finished++;
        continue;
      }
      stats.killed++;
      for (const name of new Set(outcome.hit)) stats.children.set(name, (stats.children.get(name) ?? 0) + 1);
      if (outcome.hit.length) stats.inChild++;
      const when = aimAtChild ? `while ${outcome.hit.join(', ')} ran` : `after ${delay} ms`;
      const label = `iteration ${i}: ${action.args.join(' ')} killed ${when} (seed ${SEED})`;
      const recovered = await box.cli(['recover']);
      expect(recovered.exitCode, `${label}: recover: ${recovered.stderr}`).toBe(0);
      const after = currentOf(box.root);
      const target = action.args[0] === 'install' ? action.args[1]! : null;
      const allowed = target ? [before, target] : [before, after];
      // I7 on this same device: the next install (alternating targets) and a rollback succeed.
      const next = before === '1.1.0' ? '2.0.0' : '1.1.0';
      const problems = await checkInvariants(box.root, (args) => box.cli(args), { allowed, old: before, next: { install: [next] } });
      expect(problems, label).toEqual([]);
      stats.survived++;
    }
    expect(stats.killed).toBeGreaterThanOrEqual(Math.min(ITERATIONS, 10));
  });
});
