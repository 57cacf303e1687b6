/**
 * Lock contention, measured (tests only check that refusals come without waiting): eight
 * `install` commands started at once on one root; how long the seven refused ones (exit 75)
 * take, next to one `status` alone (Node start-up plus a read) measured in the same run.
 */
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';
import { median } from './gaps.js';

export interface ContentionFigures {
  slowestRefusalMs: number;
  medianRefusalMs: number;
  aloneMs: number;
  refusals: number;
}

async function timedCli(cli: string, args: string[]): Promise<{ ms: number; exitCode: number }> {
  const t = process.hrtime.bigint();
  const r = await execa(process.execPath, [cli, 'release', ...args], { reject: false, stdin: 'ignore' });
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, exitCode: r.exitCode ?? -1 };
}

export async function contentionBench(cli: string, root: string, repo: string): Promise<ContentionFigures> {
  mkdirSync(root, { recursive: true });
  const common = ['--root', root, '--quiet'];
  await execa(process.execPath, [cli, 'release', 'install', '1.0.0', '--source', repo, ...common]);
  const alone = await timedCli(cli, ['status', ...common]);
  const runs = await Promise.all(Array.from({ length: 8 }, () => timedCli(cli, ['install', '1.1.0', '--source', repo, ...common])));
  const refused = runs.filter((r) => r.exitCode === 75).map((r) => r.ms);
  return {
    slowestRefusalMs: refused.length ? Math.max(...refused) : NaN,
    medianRefusalMs: refused.length ? median(refused) : NaN,
    aloneMs: alone.ms,
    refusals: refused.length,
  };
}

export function contentionRows(f: ContentionFigures): string {
  const row = (name: string, ms: number) =>
    `${name.padEnd(44)}${`${ms.toFixed(0)} ms`.padStart(10)}${`${(ms / f.aloneMs).toFixed(1)}x`.padStart(10)}\n`;
  return (
    `\nlock contention: 8 installs started at once, ${f.refusals} refused with exit 75 (ratio vs one \`status\` alone)\n` +
    row('one `status` alone (baseline)', f.aloneMs) +
    row('refused install, median', f.medianRefusalMs) +
    row('refused install, slowest', f.slowestRefusalMs)
  );
}
