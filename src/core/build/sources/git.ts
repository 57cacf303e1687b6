/**
 * The git source: tags `v<ver>` or `<ver>` of a cached bare mirror, exported with git archive.
 * Never lets anything but a strict semver string become part of a ref.
 */

import { promises as fs } from 'node:fs';
import { archiveStream, listTags, resolveTagCommits, syncMirror } from '../../../adapters/git.js';
import { extractTarStream, preloadTar } from '../../../adapters/tar.js';
import { IntegrityError, NotFoundError } from '../../errors.js';
import { requireSignedTag } from './git-signed.js';
import { compareVersions, latestStable, parseVersion, tryParseVersion } from '../../version.js';
import type { FetchedRelease } from './types.js';
import type { SourceAuth } from '../source-credentials.js';

export interface GitSourceOptions {
  /** Without credentials (source-credentials.ts): it is what messages and the mirror's config show. */
  source: string;
  mirrorDir: string;
  /** An http(s) source's credentials, for git's credential helper only. */
  auth?: SourceAuth | null;
}

export interface FetchGitOptions extends GitSourceOptions {
  version: string;
  stagingDir: string;
  /** Skip the network round trip when the caller has just synced. Default true. */
  syncMirror?: boolean;
  /** ssh allowed_signers file: when set, the version's tag must carry a valid signature (exit 4 otherwise). */
  allowedSigners?: string | null;
}

/** Canonical versions named by tags, ascending; tags that are not strict semver are ignored. */
export function versionsFromTags(tags: Iterable<string>): string[] {
  const versions = new Set<string>();
  for (const t of tags) {
    const v = tryParseVersion(t);
    if (v !== null) versions.add(v);
  }
  return [...versions].sort(compareVersions);
}

export async function listGitVersions(opts: GitSourceOptions): Promise<string[]> {
  await syncMirror(opts.source, opts.mirrorDir, { auth: opts.auth });
  return versionsFromTags(await listTags(opts.mirrorDir));
}

/** Highest non-prerelease version tagged in the source. */
export async function resolveGitLatest(opts: GitSourceOptions): Promise<string> {
  const versions = await listGitVersions(opts);
  const latest = latestStable(versions);
  if (latest === null) {
    throw new NotFoundError(
      `no release version tagged in git source ${opts.source}`,
      versions.length > 0 ? `only prereleases: ${versions.slice(-5).join(', ')}` : 'tags must look like v1.2.3 or 1.2.3',
    );
  }
  return latest;
}

/** Up to three available versions either side of the one asked for. */
export function nearestHint(version: string, available: string[]): string {
  if (available.length === 0) return 'the source has no version tags (v1.2.3 or 1.2.3)';
  let i = available.findIndex((v) => compareVersions(v, version) > 0);
  if (i === -1) i = available.length;
  return `nearest available: ${available.slice(Math.max(0, i - 3), i + 3).join(', ')}`;
}

/** The commit of `v<ver>` or `<ver>`; both present and different is refused as ambiguous. */
async function resolveVersionCommit(opts: FetchGitOptions, version: string): Promise<string> {
  const tags = await resolveTagCommits(opts.mirrorDir, [`v${version}`, version]);
  const prefixed = tags.get(`v${version}`) ?? null;
  const bare = tags.get(version) ?? null;
  if (prefixed !== null && bare !== null && prefixed !== bare) {
    throw new IntegrityError(
      `ambiguous version ${version}: tags v${version} (${prefixed.slice(0, 12)}) and ${version} (${bare.slice(0, 12)}) differ`,
      'delete or fix one of the two tags in the source repository',
    );
  }
  const commit = prefixed ?? bare;
  if (commit === null) {
    const available = versionsFromTags(await listTags(opts.mirrorDir));
    throw new NotFoundError(`version ${version} is not tagged in git source ${opts.source}`, nearestHint(version, available));
  }
  return commit;
}

/** Fill `stagingDir` with exactly the tree of the version's tag. */
export async function fetchGit(opts: FetchGitOptions): Promise<FetchedRelease> {
  // Validated before anything else: only a strict semver string ever becomes part of a ref.
  const version = parseVersion(opts.version);
  // node-tar loads while the fetch runs: the main thread would only wait for git.
  if (opts.syncMirror ?? true) await syncMirror(opts.source, opts.mirrorDir, { meanwhile: preloadTar, auth: opts.auth });
  const commit = await resolveVersionCommit(opts, version);
  if (opts.allowedSigners) await requireSignedTag(opts.mirrorDir, version, commit, opts.allowedSigners);
  await fs.mkdir(opts.stagingDir, { recursive: true });

  const archive = archiveStream(opts.mirrorDir, commit);
  // Handled at once so an early git failure is never an unhandled rejection while tar runs.
  const gitEnd = archive.done.then(() => null, (err: unknown) => err);
  let extracted: { entries: number; bytes: number } | undefined;
  let extractError: unknown = null;
  try {
    extracted = await extractTarStream(archive.stdout, opts.stagingDir, { gzip: false, topLevel: null });
  } catch (err) {
    extractError = err;
    archive.cancel(); // the extractor stopped reading: git would block on a full pipe
  }
  const gitError = await gitEnd;
  // git's own failure wins: a truncated stream makes tar fail (or even pass) for git's reason.
  if (gitError !== null) throw gitError;
  if (extractError !== null || extracted === undefined) throw extractError;
  return { version, kind: 'git', source: opts.source, commit, bytes: extracted.bytes };
}
