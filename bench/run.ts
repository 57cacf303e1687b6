/**
 * `npm run bench`: install, upgrade and rollback times of smolotchi-release next to a naive
 * baseline measured in the same run (venv with pip + pip install + copy + ln -sfn), as ratios.
 * Both sides install the same release offline from the same shipped wheels, on the same disk.
 * Then, where a real systemd can boot (root), the downtime of an upgrade (bench/downtime.ts), and
 * where Ansible is there too, a fleet rollout against single-device installs (bench/fleet.ts).
 */
import { execa } from 'execa';
import { cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { downtimeBench } from './downtime.js';
import { fleetBench } from './fleet.js';
import { median } from './gaps.js';
import { makeBenchRepo } from './bench-repo.js';
import { contentionBench, contentionRows } from './contention.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '..', 'src', 'cli.js');
const PYTHON = '/usr/bin/python3';
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const VERSIONS = ['1.0.0', '1.1.0'];
// Keep the host's pip settings (index, find-links) out of both sides: offline from the shipped wheels only.
const PIP_ENV = { PIP_CONFIG_FILE: os.devNull, PIP_FIND_LINKS: '', PIP_NO_INDEX: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function tool(root: string, args: string[]): Promise<void> {
  mkdirSync(root, { recursive: true });
  await execa(process.execPath, [CLI, 'release', ...args, '--root', root, '--quiet'], { env: PIP_ENV });
}

/** The naive way: export the tag, copy it in place, build a venv with pip, pip install, ln -sfn. */
async function naiveInstall(repo: string, base: string, version: string): Promise<void> {
  const dir = path.join(base, 'releases', version);
  const src = path.join(base, `src-${version}`);
  mkdirSync(src, { recursive: true });
  await execa('sh', ['-c', 'git -C "$1" archive "v$2" | tar -x -C "$3"', 'sh', repo, version, src]);
  cpSync(src, dir, { recursive: true });
  await execa(PYTHON, ['-m', 'venv', path.join(dir, 'venv')]);
  await execa(path.join(dir, 'venv', 'bin', 'pip'), ['install', '-q', '--no-index', '--find-links', path.join(dir, 'wheels'), '-r', path.join(dir, 'requirements', 'base.txt')], { env: PIP_ENV });
  await execa('ln', ['-sfn', dir, path.join(base, 'current')]);
}

async function main(): Promise<void> {
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'smolotchi-bench-')));
  try {
    const repo = path.join(work, 'repo');
    await makeBenchRepo(PYTHON, repo, VERSIONS.map((version) => ({ version })));
    const rows: Record<string, { ours: number[]; naive: number[] }> = {
      'install (fresh)': { ours: [], naive: [] },
      'upgrade (same requirements)': { ours: [], naive: [] },
      'rollback': { ours: [], naive: [] },
    };
    for (let run = 0; run < RUNS; run++) {
      const root = path.join(work, `root-${run}`);
      rows['install (fresh)']!.ours.push(await timed(() => tool(root, ['install', '1.0.0', '--source', repo])));
      rows['upgrade (same requirements)']!.ours.push(await timed(() => tool(root, ['install', '1.1.0', '--source', repo])));
      rows['rollback']!.ours.push(await timed(() => tool(root, ['rollback'])));
      const base = path.join(work, `naive-${run}`);
      rows['install (fresh)']!.naive.push(await timed(() => naiveInstall(repo, base, '1.0.0')));
      rows['upgrade (same requirements)']!.naive.push(await timed(() => naiveInstall(repo, base, '1.1.0')));
      // The naive way back re-points the link (it keeps the old folder): not atomic, no units, no record.
      rows['rollback']!.naive.push(await timed(() => execa('ln', ['-sfn', path.join(base, 'releases', '1.0.0'), path.join(base, 'current')])));
    }
    process.stdout.write(`smolotchi-release bench: ${RUNS} run(s) each, median wall time, same machine, same run\n`);
    process.stdout.write('release: sample app + 3 wheels (150 modules) from requirements/base.txt, installed offline\n\n');
    process.stdout.write(`${'operation'.padEnd(30)}${'smolotchi'.padStart(12)}${'naive'.padStart(12)}${'ratio'.padStart(10)}\n`);
    for (const [name, r] of Object.entries(rows)) {
      const ours = median(r.ours);
      const naive = median(r.naive);
      process.stdout.write(`${name.padEnd(30)}${`${ours.toFixed(0)} ms`.padStart(12)}${`${naive.toFixed(0)} ms`.padStart(12)}${`${(ours / naive).toFixed(2)}x`.padStart(10)}\n`);
    }
    process.stdout.write(
      '\nratio < 1: smolotchi is faster. smolotchi\'s numbers include fetch from a git mirror, the venv, byte-compile,\n' +
        'smoke import, stamp, unit rendering, the atomic flip and the SQLite history; service restarts are not\n' +
        'part of this table (no systemd under --root; the downtime part below has them). The naive rollback is a bare `ln -sfn`.\n',
    );
    process.stdout.write(contentionRows(await contentionBench(CLI, path.join(work, 'contention'), repo)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
await downtimeBench(RUNS, (s) => process.stdout.write(s));
await fleetBench((s) => process.stdout.write(s));
