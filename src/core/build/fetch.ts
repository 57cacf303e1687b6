/**
 * Turns `<ver|latest|file>` and the source into an install request, resolves it, fills staging.
 * Never lets an unvalidated version or a leading '-' reach a path, a URL or a git argument.
 */

import { statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../context.js';
import { UsageError, NotFoundError } from '../errors.js';
import { randomSuffix } from '../fsutil.js';
import { recordReleaseFiles } from './release-files.js';
import { gitSignersRequired, loadTrust } from '../trust/trust.js';
import { killPoint } from '../killpoint.js';
import { fetchGit, listGitVersions } from './sources/git.js';
import { fetchTarball, fetchTarballFile, listTarballVersions } from './sources/tarball.js';
import { detectSourceKind, kindFromText, type SourceKindSetting } from './source-kind.js';
import type { FetchedRelease } from './sources/types.js';
import { latestStable, parseVersion } from '../version.js';
import { splitSourceCredentials, type SourceAuth } from './source-credentials.js';

/** What the user asked to install, resolved to one version and one source. */
export interface InstallRequest {
  version: string;
  kind: 'git' | 'tarball' | 'file';
  /** Without credentials: what messages, the history and JSON answers show. */
  source: string;
  /** An http(s) git source's credentials, split off the URL for git's credential helper alone. */
  auth?: SourceAuth | null;
}

/** As parsed from the command line: `latest` is still to be asked of the source (version null). */
export type ParsedRequest = Omit<InstallRequest, 'version'> & { version: string | null };

/** Before its kind is known: an http(s) URL may still have to be asked whether it speaks git. */
export type UnsettledRequest = Omit<ParsedRequest, 'kind'> & { kind: ParsedRequest['kind'] | 'auto'; setting: SourceKindSetting };

const ARCHIVE_NAME = /^smolotchi-(.+)\.tar\.gz$/;

export function looksLikeArchivePath(arg: string): boolean {
  return arg.endsWith('.tar.gz') && (arg.includes('/') || arg.startsWith('.'));
}

/**
 * Turn `<ver|latest|./file.tar.gz>` and the source into a request, touching nothing: versions are
 * validated before anything else, so a hostile string never reaches a path or a git argument.
 */
export function parseRequest(ctx: Context, arg: string, sourceFlag: string | undefined, kindFlag?: SourceKindSetting): UnsettledRequest {
  const setting = kindFlag ?? ctx.settings.sourceKind;
  if (looksLikeArchivePath(arg)) {
    const m = ARCHIVE_NAME.exec(path.basename(arg));
    if (!m) throw new UsageError(`archive name must be smolotchi-<version>.tar.gz: ${path.basename(arg)}`);
    return { version: parseVersion(m[1]!), kind: 'file', source: path.resolve(arg), setting };
  }
  const source = sourceFlag ?? ctx.settings.source;
  // Parse the version before looking at the source: bad input is refused without side effects.
  const version = arg === 'latest' ? null : parseVersion(arg);
  if (!source) throw new UsageError('no release source: pass --source or set SMOLOTCHI_RELEASE_SOURCE in /etc/smolotchi/env');
  // A leading '-' could be taken for an option by git or tar.
  if (source.startsWith('-')) throw new UsageError(`a source may not start with '-': ${JSON.stringify(source)}`);
  const told = kindFromText(source, setting);
  const { url, auth } = splitSourceCredentials(told.source);
  if (auth && sourceFlag === undefined && ctx.env.SMOLOTCHI_RELEASE_SOURCE === undefined) refuseSharedCredentials(ctx.layout.envFile, url);
  return refuseTarballCredentials({ version, kind: told.kind ?? 'auto', source: url, auth, setting });
}

/** Credentials in an env file others can read are everyone's: the service user's first of all. */
function refuseSharedCredentials(envFile: string, url: string): void {
  const mode = (statSync(envFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o777;
  if ((mode & 0o044) === 0) return;
  throw new UsageError(
    `SMOLOTCHI_RELEASE_SOURCE in ${envFile} carries credentials (${url}), but the file is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
    `chmod 600 ${envFile}, or use an ssh URL with a deploy key in root's ~/.ssh`,
  );
}

/** Only git has somewhere safe to put credentials (its credential helper); a download would show them in errors. */
function refuseTarballCredentials<R extends { kind: string; source: string; auth?: SourceAuth | null }>(req: R): R {
  if (req.kind === 'tarball' && req.auth) throw new UsageError(`credentials in a source URL are not supported: ${req.source}`, 'only a git source may carry them');
  return req;
}

/** Settle the kind of an http(s) URL that did not say it: ask it (once) whether it speaks git. */
export async function settleKind(req: UnsettledRequest): Promise<ParsedRequest> {
  const { setting: _setting, ...rest } = req;
  if (req.kind !== 'auto') return { ...rest, kind: req.kind };
  const { kind, source } = await detectSourceKind(req.source, req.setting, req.auth);
  return refuseTarballCredentials({ ...rest, kind, source });
}

/** `latest` = the highest non-prerelease version the source offers (git: after syncing the mirror). */
export async function resolveRequest(ctx: Context, req: ParsedRequest): Promise<InstallRequest> {
  if (req.version !== null) return { ...req, version: req.version };
  let versions: string[];
  if (req.kind === 'git') versions = await listGitVersions({ source: req.source, mirrorDir: ctx.layout.mirrorDir, auth: req.auth });
  else versions = await listTarballVersions(req.source);
  const latest = latestStable(versions);
  if (!latest) throw new NotFoundError(`no released version found in ${req.source}`);
  return { ...req, version: latest };
}

/** DESIGN step 3: fill a fresh staging folder on the same filesystem as releases/. */
export async function fetchIntoStaging(ctx: Context, req: InstallRequest): Promise<{ staging: string; fetched: FetchedRelease }> {
  // Read and permission-checked before staging exists: a bad keys folder leaves nothing behind.
  const trust = await loadTrust(ctx.layout.keysDir);
  const allowedSigners = req.kind === 'git' ? gitSignersRequired(trust) : null;
  const name = `${req.version}.${randomSuffix()}`;
  const staging = path.join(ctx.layout.stagingDir, name);
  const workDir = path.join(ctx.layout.stagingDir, `${name}.work`);
  await mkdir(staging, { recursive: true, mode: 0o755 });
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  killPoint('staging-created', ctx.env);
  try {
    let fetched: FetchedRelease;
    if (req.kind === 'git') fetched = await fetchGit({ source: req.source, mirrorDir: ctx.layout.mirrorDir, auth: req.auth, version: req.version, stagingDir: staging, allowedSigners });
    else if (req.kind === 'tarball') fetched = await fetchTarball({ source: req.source, version: req.version, stagingDir: staging, workDir, trust });
    else fetched = await fetchTarballFile({ file: req.source, stagingDir: staging, workDir, trust });
    // What `verify` will compare against: the tree as fetched, before the venv build touches it.
    fetched.filesHash = await recordReleaseFiles(staging, fetched.version, fetched.signed);
    return { staging, fetched };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
