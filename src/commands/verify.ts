/**
 * `release verify`: re-hashes installed trees against their file lists and signed manifests.
 * Read-only: never takes the lock nor repairs what it finds; any finding is exit 4.
 */

import { historyProblem } from '../adapters/history-db.js';
import type { Context } from '../core/context.js';
import { NotFoundError, UsageError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { releaseDir } from '../core/layout.js';
import { scanReleases } from '../core/state/releases.js';
import { shadowingModules } from '../core/verify/shadow-check.js';
import { readCurrent } from '../core/state/switch.js';
import { loadTrust } from '../core/trust/trust.js';
import { requireInstalled } from '../core/activate/targets.js';
import { verifyRelease, type ReleaseCheck } from '../core/verify/verify-release.js';
import { parseVersion } from '../core/version.js';
import { exists } from '../core/fsutil.js';

export interface VerifyOptions {
  version?: string;
  all?: boolean;
}

export interface VerifyResult {
  command: 'verify';
  releases: ReleaseCheck[];
  /** What the history's full page check found (null: sound or absent); `recover` moves a damaged one aside. */
  historyProblem: string | null;
  ok: boolean;
  exitCode: number;
}

/** Which releases: the one named, every one on disk (--all), or the current one. */
async function targets(options: VerifyOptions, ctx: Context): Promise<string[]> {
  if (options.version && options.all) throw new UsageError('name a version or pass --all, not both');
  // Incomplete folders are crash leftovers the next command removes, never targets: not "installed".
  if (options.all) {
    const releases = await scanReleases(ctx.layout);
    requireInstalled(ctx, { current: await readCurrent(ctx.layout), releases });
    return releases.filter((r) => r.stamp).map((r) => r.version);
  }
  if (options.version) {
    const version = parseVersion(options.version);
    if (!(await exists(releaseDir(ctx.layout, version)))) throw new NotFoundError(`release ${version} is not installed on this device`);
    return [version];
  }
  const current = await readCurrent(ctx.layout);
  if (!current) requireInstalled(ctx, { current, releases: await scanReleases(ctx.layout) });
  if (!current) throw new NotFoundError('no current release to verify', 'name a version or pass --all');
  return [current];
}

/** `verify [<ver>|--all]`: re-hash installed trees; read-only, so it takes no lock. Exit 4 on any finding. */
export async function verify(options: VerifyOptions, ctx: Context): Promise<VerifyResult> {
  const versions = await targets(options, ctx);
  // A keys folder that fails its own checks is a finding too (exit 4), reported by loadTrust.
  const trust = await loadTrust(ctx.layout.keysDir);
  const releases: ReleaseCheck[] = [];
  for (const version of versions) {
    const dir = releaseDir(ctx.layout, version);
    const check = await verifyRelease(dir, version, trust);
    const shadows = check.status === 'incomplete' ? [] : await shadowingModules(ctx.layout, dir);
    if (shadows.length > 0) releases.push({ ...check, status: 'tampered', problems: [...check.problems, ...shadows] });
    else releases.push(check);
  }
  // Other commands rely on SQLite's own errors; verify reads every page of the history.
  const problem = historyProblem(ctx.layout.historyDb);
  const ok = releases.every((r) => r.status === 'ok') && problem === null;
  return { command: 'verify', releases, historyProblem: problem, ok, exitCode: ok ? ExitCode.ok : ExitCode.integrity };
}
