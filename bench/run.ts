/**
 * `npm run bench`: the rows of issue 12, ours and the baseline measured in the same run, as ratios,
 * with the peak RSS of each of our commands. Both sides install the same releases offline from the
 * same shipped wheels, on the same disk. Under the table, how much of the rollback is ours: its
 * unskippable work alone in a bare node script (bench/rollback-work.ts). Then, where a real systemd
 * can boot (root), the downtime of an upgrade (bench/downtime.ts), lock contention
 * (bench/contention.ts) and, where Ansible is there too, a fleet rollout (bench/fleet.ts). No test asserts these times: this is the only place they live.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeLayout } from '../src/core/layout.js';
import { fillHistory } from './big-history.js';
import { benchStack, makeBenchRepo } from './bench-repo.js';
import { downtimeBench } from './downtime.js';
import { writeQuickSystemctl } from '../scripts/quick-systemctl.js';
import { fleetBench } from './fleet.js';
import { median } from './gaps.js';
import { contentionBench, contentionRows } from './contention.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '..', 'src', 'cli.js');
const ROLLBACK_WORK = path.join(here, 'rollback-work.js');
const PYTHON = '/usr/bin/python3';
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DEPLOYS = Number(process.env.BENCH_DEPLOYS ?? 100_000);
// A rollback and a bare flip take ~0.1 s each, and a median of 3 of them moved by 30% between runs
// with the machine alone: the rollback row takes at least 9 samples of each side, interleaved.
const ROLLBACK_SAMPLES = Math.max(RUNS, 9);
// Keep the host's pip settings (index, find-links) out of both sides: offline from the shipped wheels only.
const PIP_ENV = { PIP_CONFIG_FILE: os.devNull, PIP_FIND_LINKS: '', PIP_NO_INDEX: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
const TIME = '/usr/bin/time';
// A device starts node without extra CA bundles. A build host's NODE_EXTRA_CA_CERTS makes every node
// start (ours and the node-flip baseline's alike) parse that bundle first, ~50-80 ms of CPU on the
// 2-core machine: a cost of the host, not of the tool. Dropped for every process the bench starts,
// unless BENCH_KEEP_ENV=1 (to compare with figures measured with it).
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS;
if (EXTRA_CA && process.env.BENCH_KEEP_ENV !== '1') delete process.env.NODE_EXTRA_CA_CERTS;
const HOST_NOTE = !EXTRA_CA ? '' : process.env.BENCH_KEEP_ENV === '1' ? `environment: NODE_EXTRA_CA_CERTS=${EXTRA_CA} kept (BENCH_KEEP_ENV=1): every node start parses it\n` : `environment: NODE_EXTRA_CA_CERTS (${EXTRA_CA}) dropped for every process measured: a device has none (BENCH_KEEP_ENV=1 keeps it)\n`;
// BENCH_ONLY=rollback: only the rollback row (our installs still run: they set it up), for quick iteration.
const ONLY_ROLLBACK = process.env.BENCH_ONLY === 'rollback';
// BENCH_ONLY=changed: only the "one requirement changed" row (and the install it upgrades from), for iterating on it.
const ONLY_CHANGED = process.env.BENCH_ONLY === 'changed';
// BENCH_ONLY=same: only the "same requirements" row (and the install it upgrades from), for iterating on it.
const ONLY_SAME = process.env.BENCH_ONLY === 'same';
// Any BENCH_ONLY leaves out the systemd parts (downtime, fleet) as well: one row, quickly.
const ONLY_ONE_ROW = ONLY_ROLLBACK || ONLY_CHANGED || ONLY_SAME;

interface Sample {
  ms: number;
  /** Peak resident set of the command and its children (the largest one), in KiB. */
  rssKb: number | null;
}

// Without /usr/bin/time, Python's getrusage(RUSAGE_CHILDREN) reads the same figure for the child.
const RUSAGE = 'import resource, subprocess, sys\nr = subprocess.run(sys.argv[2:])\nopen(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\nsys.exit(r.returncode)';

/** Wall time and peak RSS of one command; it must succeed. */
async function sample(argv: string[], env: Record<string, string> = {}): Promise<Sample> {
  const rssFile = path.join(os.tmpdir(), `smolotchi-bench-rss-${process.pid}`);
  const [file, args] = existsSync(TIME) ? [TIME, ['-f', '%M', '-o', rssFile, ...argv]] : [PYTHON, ['-c', RUSAGE, rssFile, ...argv]];
  // Every command starts with nothing of the one before still being written back (a naive
  // install leaves ~30 MB of dirty pages): each side pays for its own writes, not the other's.
  await execa('sync');
  const t = process.hrtime.bigint();
  await execa(file, args, { env: { ...PIP_ENV, ...env } });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  const rss = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
  rmSync(rssFile, { force: true });
  return { ms, rssKb: Number.isFinite(rss) ? rss : null };
}

/**
 * Each root gets its own quick systemctl, which keeps the enable links in that root's unit folder
 * as systemd does on a device (a deploy whose units are enabled already skips `enable`).
 */
function systemctlFor(root: string): string {
  const bin = `${root}.bin`;
  if (existsSync(path.join(bin, 'systemctl'))) return path.join(bin, 'systemctl');
  mkdirSync(bin, { recursive: true });
  return writeQuickSystemctl(bin, undefined, path.join(root, 'etc', 'systemd', 'system'));
}

const tool = (root: string, args: string[]) => {
  mkdirSync(root, { recursive: true });
  return sample([process.execPath, CLI, 'release', ...args, '--root', root, '--systemctl', systemctlFor(root), '--quiet']);
};

/** The naive way (issue 12): git archive, python3 -m venv with pip, pip install the release's wheels, ln -sfn + mv -T. */
async function naiveInstall(repo: string, base: string, version: string): Promise<number> {
  const dir = path.join(base, 'releases', version);
  mkdirSync(dir, { recursive: true });
  const script = [
    'git -C "$1" archive "v$2" | tar -x -C "$3"',
    `"$4" -m venv "$3/venv"`,
    '"$3/venv/bin/pip" install -q --no-index --find-links "$3/wheels" -r "$3/requirements/base.txt"',
    'ln -sfn "$3" "$5/current.tmp" && mv -T "$5/current.tmp" "$5/current"',
  ].join(' && ');
  return (await sample(['sh', '-c', script, 'sh', repo, version, dir, PYTHON, base])).ms;
}

/** The floor of a rollback: a fresh node process that points a symlink elsewhere by rename. */
async function bareNodeFlip(base: string, target: string): Promise<number> {
  const code = 'const fs = require("node:fs"); const [t, l] = process.argv.slice(1); fs.symlinkSync(t, l + ".tmp"); fs.renameSync(l + ".tmp", l);';
  return (await sample([process.execPath, '-e', code, target, path.join(base, 'current')])).ms;
}

/** A rollback's unskippable work alone (bench/rollback-work.ts), on `root`'s installed units and systemctl. */
async function rollbackWork(dir: string, root: string): Promise<number> {
  mkdirSync(dir, { recursive: true });
  return (await sample([process.execPath, ROLLBACK_WORK, dir, makeLayout(root).unitDir, systemctlFor(root)])).ms;
}

/** How much of the rollback is ours: what is left of it with every check and every module of ours gone. */
function rollbackWorkLine(rollback: Row, work: number[]): string {
  const [ours, flip, floor] = [median(rollback.ours.map((s) => s.ms)), median(rollback.base), median(work)];
  return (
    `\nrollback: ${fmtMs(ours)}; the work none can skip (bench/rollback-work.ts: SQLite journal, unit read, flip, two restart calls\n` +
    `and one show, in a bare node script) takes ${fmtMs(floor)} = ${(floor / flip).toFixed(2)}x the bare flip; loading and checks add ${fmtMs(ours - floor)}.\n`
  );
}

interface Row {
  name: string;
  baseline: string;
  goal: number | null;
  ours: Sample[];
  base: number[];
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

function printRows(rows: Row[]): void {
  const w = [56, 9, 9, 17, 7, 8, 9, 7];
  const line = (cells: string[]) => process.stdout.write(cells.map((c, i) => (i === 0 || i === 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' ') + '\n');
  line(['measured', 'ours', 'baseline', '  baseline is', 'ratio', 'goal', 'peak RSS', 'goal']);
  for (const r of rows) {
    const ours = median(r.ours.map((s) => s.ms));
    const base = median(r.base);
    const rss = Math.max(...r.ours.map((s) => s.rssKb ?? 0));
    const ratio = ours / base;
    const goal = r.goal === null ? '-' : `<=${r.goal.toFixed(2)}x`;
    const verdict = r.goal === null ? '' : ratio <= r.goal ? 'met' : 'MISSED';
    line([r.name, fmtMs(ours), fmtMs(base), `  ${r.baseline}`, `${ratio.toFixed(2)}x`, goal, rss ? `${(rss / 1024).toFixed(0)} MB` : '?', verdict]);
  }
}

async function main(): Promise<void> {
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'smolotchi-bench-')));
  try {
    const stack = await benchStack(PYTHON, path.join(work, 'wheels'), { real: process.env.BENCH_SYNTHETIC !== '1' });
    const repo = path.join(work, 'repo');
    // 1.1.0 pins the same set as 1.0.0; 1.2.0 changes one pin (the helper wheel).
    await makeBenchRepo(PYTHON, repo, [{ version: '1.0.0', helper: '1.0.0' }, { version: '1.1.0', helper: '1.0.0' }, { version: '1.2.0', helper: '1.1.0' }], stack);
    const row = (name: string, baseline: string, goal: number | null): Row => ({ name, baseline, goal, ours: [], base: [] });
    const fresh = row('install, fresh (no venv to clone)', 'naive install', null);
    const same = row('upgrade, same requirements (venv cloned by hard links)', 'naive install', 0.1);
    const changed = row('upgrade, one requirement changed (venv cloned, pip applies the difference)', 'naive install', 0.35);
    const rollback = row('rollback (--settle 0)', 'bare node flip', 3);
    const status = row(`status over ${DEPLOYS.toLocaleString('en')} deploys x 5 steps`, '--help', 2);
    const list = row(`list over ${DEPLOYS.toLocaleString('en')} deploys`, '--help', 2);
    const history = row(`history --limit 20 over ${DEPLOYS.toLocaleString('en')} deploys`, '--help', 2);
    const gate = ['--settle', '0'];
    // BENCH_ONLY=changed|same: one upgrade row alone, from 1.0.0 to the version that row installs.
    const upgradeOnly = ONLY_CHANGED ? { row: changed, version: '1.2.0', label: 'changed' } : ONLY_SAME ? { row: same, version: '1.1.0', label: 'same' } : null;
    if (upgradeOnly) {
      for (let run = 0; run < RUNS; run++) {
        const root = path.join(work, `root-${run}`);
        await tool(root, ['install', '1.0.0', '--source', repo, ...gate]);
        upgradeOnly.row.ours.push(await tool(root, ['install', upgradeOnly.version, '--source', repo, ...gate]));
        upgradeOnly.row.base.push(await naiveInstall(repo, path.join(work, `naive-${run}`), upgradeOnly.version));
      }
      process.stdout.write(`smolotchi-release bench (BENCH_ONLY=${upgradeOnly.label}): median of ${RUNS} run(s), ${os.cpus().length} CPU(s)\n${HOST_NOTE}\n`);
      printRows([upgradeOnly.row]);
      return;
    }
    for (let run = 0; run < RUNS; run++) {
      const root = path.join(work, `root-${run}`);
      fresh.ours.push(await tool(root, ['install', '1.0.0', '--source', repo, ...gate]));
      same.ours.push(await tool(root, ['install', '1.1.0', '--source', repo, ...gate]));
      changed.ours.push(await tool(root, ['install', '1.2.0', '--source', repo, ...gate]));
      rollback.ours.push(await tool(root, ['rollback', ...gate]));
      const base = path.join(work, `naive-${run}`);
      if (ONLY_ROLLBACK) {
        mkdirSync(base, { recursive: true });
        rollback.base.push(await bareNodeFlip(base, path.join(base, 'releases', '1.1.0')));
        continue;
      }
      fresh.base.push(await naiveInstall(repo, base, '1.0.0'));
      const naiveUpgrade = await naiveInstall(repo, base, '1.1.0');
      same.base.push(naiveUpgrade);
      changed.base.push(await naiveInstall(repo, base, '1.2.0'));
      rollback.base.push(await bareNodeFlip(base, path.join(base, 'releases', '1.1.0')));
    }
    // More rollbacks on the first root, back and forth between its two newest releases (the same
    // work either way: both are complete and their units identical), each next to a bare flip.
    const firstNaive = path.join(work, 'naive-0');
    // The rollback's unskippable work alone (bench/rollback-work.ts) is sampled among them.
    const floorWork: number[] = [];
    while (floorWork.length < ROLLBACK_SAMPLES) {
      if (rollback.ours.length < ROLLBACK_SAMPLES) {
        rollback.ours.push(await tool(path.join(work, 'root-0'), ['rollback', ...gate]));
        rollback.base.push(await bareNodeFlip(firstNaive, path.join(firstNaive, 'releases', '1.1.0')));
      }
      floorWork.push(await rollbackWork(path.join(work, 'rollback-work'), path.join(work, 'root-0')));
    }
    if (ONLY_ROLLBACK) {
      process.stdout.write(`smolotchi-release bench (BENCH_ONLY=rollback): median of ${ROLLBACK_SAMPLES} rollbacks, same machine, same run, ${os.cpus().length} CPU(s)\n${HOST_NOTE}\n`);
      printRows([rollback]);
      process.stdout.write(rollbackWorkLine(rollback, floorWork));
      return;
    }
    // Years of history in one device's file, through the project's own migrations.
    const big = path.join(work, 'root-0');
    fillHistory(makeLayout(big).historyDb, DEPLOYS, 5, Array.from({ length: 40 }, (_, i) => `0.${i}.0`).concat(['1.0.0', '1.1.0', '1.2.0']));
    for (let run = 0; run < Math.max(RUNS, 5); run++) {
      const help = (await sample([process.execPath, CLI, '--help'])).ms;
      for (const [r, args] of [[status, ['status']], [list, ['list']], [history, ['history', '--limit', '20']]] as const) {
        r.ours.push(await tool(big, [...args]));
        r.base.push(help);
      }
    }
    process.stdout.write(`smolotchi-release bench: median of ${RUNS} run(s) (rollback: of ${ROLLBACK_SAMPLES}; history rows: of ${Math.max(RUNS, 5)}), same machine, same run, ${os.cpus().length} CPU(s)\n`);
    process.stdout.write(`release: sample app + ${stack.label}, installed offline from the release's wheels/\n`);
    process.stdout.write(`systemctl: a shell stub answering "active" at once; naive = git archive | tar, python3 -m venv (with pip), pip install, ln -sfn + mv -T\n${HOST_NOTE}\n`);
    printRows([same, changed, rollback, status, list, history, fresh]);
    process.stdout.write(
      '\nratio = ours / baseline; peak RSS = the largest process of our command (pip included where it runs).\n' +
        'Ours includes fetch from a git mirror, the venv, byte-compile, smoke import, stamp, units, the atomic flip,\n' +
        'restarts, the health gate and the SQLite history.\n',
    );
    process.stdout.write(rollbackWorkLine(rollback, floorWork));
    process.stdout.write(contentionRows(await contentionBench(CLI, path.join(work, 'contention'), repo)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
if (process.env.BENCH_DOWNTIME !== '0' && !ONLY_ONE_ROW) await downtimeBench(RUNS, (s) => process.stdout.write(s));
if (process.env.BENCH_FLEET !== '0' && !ONLY_ONE_ROW) await fleetBench((s) => process.stdout.write(s));
