/**
 * The git source: mirror sync, tag lookups and `git archive` streamed into the extractor.
 * Never lets root's or the system's git config, or a string the operator typed, reach git as an option.
 */

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { NotFoundError, ReleaseError, UsageError } from '../core/errors.js';
import { ALLOWED_SCHEMES, git, gitArgs, gitDirect, gitDirectAllowingFailure, gitEnv, type DirectCallOptions, type GitAuth } from './git-run.js';
import { killAfter, ProcessError, spawnChild, tailLines, waitForExit } from './process.js';

/**
 * The git source's questions, one small function each. Which runner each call takes (git-run.ts):
 * - simple-git's guard (`git`): every call carrying the operator's source string, namely the
 *   first clone, `remote set-url`, and `ls-remote`.
 * - spawned directly (`gitDirect`): calls whose argv is all ours, namely the mirror fetch (from
 *   `origin`, whose URL went through checkSource and the guard when it was set), `for-each-ref`,
 *   `rev-parse` and `config --get` of constant or SAFE_TAG-checked refs, and `git archive` of a
 *   full commit id (spawned here, because it streams into the extractor). An install from an
 *   existing mirror thus never loads simple-git.
 */

// A first clone over a Pi's Wi-Fi can take minutes; a hung server must still end.
const NETWORK_TIMEOUT_MS = 10 * 60_000;
const ARCHIVE_TIMEOUT_MS = 10 * 60_000;
/** Prefix of the temp dir a first clone fills beside the mirror before the rename. */
export const PARTIAL_MIRROR_INFIX = '.partial-';

/**
 * Refuse a source string that git could read as something other than a repository address.
 * Returns the string to hand to git (local paths made absolute, so the stored URL is stable).
 */
export function checkSource(source: string): string {
  if (source.length === 0) throw new UsageError('git source is empty');
  // A leading dash would be parsed as a git option (--upload-pack=<cmd> runs a command).
  if (source.startsWith('-')) throw new UsageError(`git source may not start with "-": ${JSON.stringify(source)}`);
  // Control characters have no place in a URL or path and would corrupt the mirror's config.
  if (/[\u0000-\u001f\u007f]/.test(source)) throw new UsageError('git source contains control characters');
  // Credentials in argv are readable by every user through /proc: core splits them off for the credential helper.
  if (/^https?:\/\/[^/?#]*@/i.test(source)) throw new UsageError('git source still carries credentials: they go to the credential helper, never into argv');
  // <helper>::<address> runs git-remote-<helper>; ext:: executes arbitrary commands.
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(source)) {
    throw new UsageError(`git remote helpers are not allowed as a source: ${JSON.stringify(source)}`);
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(source)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (!ALLOWED_SCHEMES.includes(scheme)) throw new UsageError(`git source scheme not allowed: ${scheme}`);
    // ssh://-oProxyCommand=... would hand an option to ssh.
    if (/^[^:]+:\/\/([^@/]*@)?-/.test(source)) throw new UsageError('git source host may not start with "-"');
    return source;
  }
  // scp-like user@host:path (a colon before any slash); same dash rule for the host.
  const scp = /^([^/:]*@)?([^/:]+):/.exec(source);
  if (scp) {
    if (scp[2]!.startsWith('-')) throw new UsageError('git source host may not start with "-"');
    return source;
  }
  return path.resolve(source);
}

const isLocal = (checked: string) => path.isAbsolute(checked);

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(() => true, () => false);
}

/** Temp dirs of clones that never reached their rename: dead weight, never a valid mirror. */
async function removePartialMirrors(mirrorDir: string): Promise<void> {
  const parent = path.dirname(mirrorDir);
  const prefix = path.basename(mirrorDir) + PARTIAL_MIRROR_INFIX;
  for (const name of await fs.readdir(parent)) {
    if (name.startsWith(prefix)) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/**
 * The mirror's origin URL. Read from its config file when that is the plain file `git clone
 * --mirror` wrote (one url, no quoting, escapes, comments or includes): a git process costs more
 * than the rest of the check. Anything else is asked of git itself.
 */
async function originUrlOf(mirrorDir: string): Promise<string> {
  const text = await fs.readFile(path.join(mirrorDir, 'config'), 'utf8').catch(() => null);
  // Backslashes, comments and includes are git's to interpret, not ours.
  if (text !== null && !/[\\#;]|include/i.test(text)) {
    const urls: string[] = [];
    let inOrigin: boolean | null = false;
    for (const line of text.split('\n')) {
      if (/^\s*\[/.test(line)) {
        // Section names are case-insensitive, subsection names are not; any other spelling of origin: ask git.
        inOrigin = /^\s*\[\s*remote\s+"origin"\s*\]\s*$/i.test(line) && line.includes('"origin"') ? true : /origin/i.test(line) ? null : false;
        if (inOrigin === null) break;
      } else if (inOrigin) {
        const url = /^\s*url\s*=\s*(.*?)\s*$/i.exec(line);
        if (url) urls.push(url[1]!.includes('"') ? '' : url[1]!);
      }
    }
    if (inOrigin !== null && urls.length === 1 && urls[0] !== '') return urls[0]!;
  }
  // Direct: constant argv.
  return (await gitDirectAllowingFailure(mirrorDir, ['config', '--get', 'remote.origin.url'])).stdout.trim();
}

/**
 * Create or update the bare mirror of `source` at `mirrorDir`. `meanwhile` runs while an update's
 * fetch is under way (work for a main thread that only waits); a first clone does without it.
 * `source` carries no credentials (the mirror's config keeps the URL); `auth` goes to git's
 * credential helper on the calls that reach the server.
 */
export async function syncMirror(source: string, mirrorDir: string, options: Pick<DirectCallOptions, 'meanwhile' | 'auth'> = {}): Promise<void> {
  const url = checkSource(source);
  const { auth } = options;
  if (isLocal(url) && !(await exists(url))) throw new NotFoundError(`git source not found: ${source}`);
  const what = `git sync from ${source}`;
  if (await exists(mirrorDir)) {
    // Through the guard: the URL is the operator's string.
    if ((await originUrlOf(mirrorDir)) !== url) await git(mirrorDir, ['remote', 'set-url', '--', 'origin', url]);
    // --force: a moved tag must replace ours; --prune(-tags): a deleted tag must disappear.
    // autoDetach off: no background gc may outlive the command holding the release lock.
    // fsckObjects: malformed objects (e.g. tree entries named ..) are refused at the door.
    const config = ['gc.autoDetach=false', 'maintenance.autoDetach=false', 'transfer.fsckObjects=true'];
    // Direct: its argv is all ours (the URL went through checkSource and the guard when it was set).
    const args = ['fetch', '--quiet', '--prune', '--prune-tags', '--tags', '--force', 'origin'];
    await gitDirect(mirrorDir, args, { config, timeoutMs: NETWORK_TIMEOUT_MS, what, meanwhile: options.meanwhile, auth });
    return;
  }
  await fs.mkdir(path.dirname(mirrorDir), { recursive: true });
  await removePartialMirrors(mirrorDir);
  // Clone beside the final path, then rename: a crash leaves a temp dir, never a half mirror.
  const tmp = await fs.mkdtemp(path.resolve(mirrorDir) + PARTIAL_MIRROR_INFIX);
  try {
    // --no-local: hard-linked objects would share inodes with the source's owner, who could
    // rewrite them later; the transport copies and (fsckObjects) verifies every object instead.
    // Through the guard: the URL is the operator's string.
    const args = ['clone', '--quiet', '--mirror', '--no-local', '--', url, tmp];
    await git(null, args, { config: ['transfer.fsckObjects=true'], timeoutMs: NETWORK_TIMEOUT_MS, what, auth });
    await fs.rename(tmp, mirrorDir);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** How long asking a source for its refs may take: an answer is small, a dead host must not hang us. */
const LS_REMOTE_TIMEOUT_MS = 60_000;

/**
 * The tags a source offers, without cloning or touching the mirror: name -> commit (annotated
 * tags peeled). Used by dry runs, and to tell an http(s) git repository from a tarball folder.
 */
export async function lsRemoteTags(source: string, timeoutMs = LS_REMOTE_TIMEOUT_MS, auth: GitAuth | null = null): Promise<Map<string, string>> {
  const url = checkSource(source);
  if (isLocal(url) && !(await exists(url))) throw new NotFoundError(`git source not found: ${source}`);
  // Through the guard: the URL is the operator's string.
  const { stdout } = await git(null, ['ls-remote', '--tags', '--', url], { timeoutMs, what: `git ls-remote ${source}`, auth });
  const tags = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([0-9a-f]{40}|[0-9a-f]{64})\trefs\/tags\/(.+?)(\^\{\})?$/.exec(line);
    // The peeled line (^{}) names the commit of an annotated tag: it wins over the tag object.
    if (m && (m[3] !== undefined || !tags.has(m[2]!))) tags.set(m[2]!, m[1]!);
  }
  return tags;
}

/** Does `url` answer git's protocol? (A short, quiet `git ls-remote`; any failure is "no".) */
export async function answersGit(url: string, timeoutMs = 15_000, auth: GitAuth | null = null): Promise<boolean> {
  try {
    // Through the guard: the URL is the operator's string.
    await git(null, ['ls-remote', '--heads', '--', checkSource(url)], { timeoutMs, auth });
    return true;
  } catch {
    return false;
  }
}

/** Tag names of the mirror (short names, as git stores them; unvalidated). */
export async function listTags(mirrorDir: string): Promise<string[]> {
  // Direct: constant argv.
  const { stdout } = await gitDirect(mirrorDir, ['for-each-ref', '--format=%(refname:strip=2)', 'refs/tags/']);
  return stdout.split('\n').filter((l) => l.length > 0);
}

// Tags we resolve come from parsed versions; anything else (^, ~, :, .., spaces) is refused.
export const SAFE_TAG = /^(?!.*\.\.)[0-9A-Za-z][0-9A-Za-z._+-]*$/;

/** The commit a tag points at (annotated tags peeled), or null when there is no such tag. */
export async function resolveTagCommit(mirrorDir: string, tag: string): Promise<string | null> {
  if (!SAFE_TAG.test(tag)) throw new UsageError(`not a safe tag name: ${JSON.stringify(tag)}`);
  // Full ref name: a tag can never be read as an option, a branch or another rev expression.
  // Direct: the tag passed SAFE_TAG just above.
  const r = await gitDirectAllowingFailure(mirrorDir, ['rev-parse', '--verify', '--quiet', '--end-of-options', `refs/tags/${tag}^{commit}`]);
  if (r.exitCode === 1 && r.stdout.trim() === '') return null;
  if (r.exitCode !== 0) throw new ProcessError(r.argv, r.exitCode, undefined, tailLines(r.stderr));
  return r.stdout.trim();
}

/**
 * The commits of several tags in one git call (null: no such tag), each as resolveTagCommit
 * answers it. A tag of a tag, or of something other than a commit, is peeled by rev-parse.
 */
export async function resolveTagCommits(mirrorDir: string, tags: string[]): Promise<Map<string, string | null>> {
  for (const tag of tags) if (!SAFE_TAG.test(tag)) throw new UsageError(`not a safe tag name: ${JSON.stringify(tag)}`);
  // Full ref names as patterns: safe tags hold no glob characters, and the names are matched exactly below.
  const format = '--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)';
  // Direct: every tag passed SAFE_TAG just above.
  const { stdout } = await gitDirect(mirrorDir, ['for-each-ref', format, ...tags.map((t) => `refs/tags/${t}`)]);
  const found = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const [ref, ...fields] = line.split('\0');
    if (ref) found.set(ref, fields);
  }
  const commits = new Map<string, string | null>();
  for (const tag of tags) {
    const f = found.get(`refs/tags/${tag}`);
    if (!f) commits.set(tag, null);
    else if (f[0] === 'commit') commits.set(tag, f[1]!);
    else if (f[0] === 'tag' && f[2] === 'commit') commits.set(tag, f[3]!);
    else commits.set(tag, await resolveTagCommit(mirrorDir, tag));
  }
  return commits;
}

export interface ArchiveStream {
  /** The tar bytes of the commit's tree. */
  stdout: Readable;
  /** Settles when git exits: rejects with ProcessError if git failed on its own; resolves when the
   *  reader closed `stdout` or called cancel() before git was done (the reader has the reason). */
  done: Promise<void>;
  /** Stop git (e.g. the extractor refused an entry and stopped reading). */
  cancel(): void;
}

/** `git archive --format=tar <commit>` as a stream; `commit` must be a full object id. */
export function archiveStream(mirrorDir: string, commit: string): ArchiveStream {
  if (!/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)) throw new ReleaseError(`not a commit id: ${JSON.stringify(commit)}`);
  const args = gitArgs(mirrorDir, ['archive', '--format=tar', commit]);
  // gitEnv() is the whole environment: nothing of root's GIT_* variables is passed on.
  const child = spawnChild('git', args, { env: gitEnv(), extendEnv: false, stdin: 'ignore' });
  const stderr: Buffer[] = [];
  child.stderr!.on('data', (b: Buffer) => stderr.push(b));
  // Handed over through a PassThrough at once, so the caller may set up its reader at leisure.
  const stdout = new PassThrough();
  pipeline(child.stdout!, stdout, () => {}); // errors reach the reader through `stdout` itself
  let gitEnded = false;
  let readerStoppedEarly = false;
  child.stdout!.once('end', () => (gitEnded = true));
  const stoppedByReader = () => (readerStoppedEarly ||= !gitEnded);
  stdout.once('close', stoppedByReader);
  const stopTimer = killAfter(child, ARCHIVE_TIMEOUT_MS);

  const done = waitForExit(child).then((r) => {
    stopTimer();
    if (r.code === 0) return;
    // The reader closed the stream or cancelled before git had written everything: git's broken
    // pipe, connection reset or SIGTERM is a consequence, and the reader holds the real reason.
    if (readerStoppedEarly) return;
    const text = Buffer.concat(stderr).toString('utf8');
    throw new ProcessError(['git', ...args], r.error ? undefined : (r.code ?? undefined), r.signal ?? undefined, tailLines(text || (r.error?.message ?? '')), 'git archive');
  });
  const cancel = () => {
    stoppedByReader();
    // Unread bytes would keep git's stdout open: drop them, and stop git.
    stdout.destroy();
    child.stdout?.destroy();
    child.kill('SIGTERM');
  };
  return { stdout, done, cancel };
}
