import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { execa } from 'execa';
import { NotFoundError, ReleaseError, UsageError } from '../core/errors.js';
import { ALLOWED_SCHEMES, git, gitAllowingFailure, gitArgs, gitEnv } from './git-run.js';
import { ProcessError, tailLines } from './process.js';

/**
 * The git source's questions, one small function each. Repository work goes through simple-git
 * (git-run.ts); only `git archive` is spawned here, because it streams into the extractor.
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

/** Create or update the bare mirror of `source` at `mirrorDir`. */
export async function syncMirror(source: string, mirrorDir: string): Promise<void> {
  const url = checkSource(source);
  if (isLocal(url) && !(await exists(url))) throw new NotFoundError(`git source not found: ${source}`);
  const what = `git sync from ${source}`;
  if (await exists(mirrorDir)) {
    const current = await gitAllowingFailure(mirrorDir, ['config', '--get', 'remote.origin.url']);
    if (current.stdout.trim() !== url) await git(mirrorDir, ['remote', 'set-url', '--', 'origin', url]);
    // --force: a moved tag must replace ours; --prune(-tags): a deleted tag must disappear.
    // autoDetach off: no background gc may outlive the command holding the release lock.
    // fsckObjects: malformed objects (e.g. tree entries named ..) are refused at the door.
    const config = ['gc.autoDetach=false', 'maintenance.autoDetach=false', 'transfer.fsckObjects=true'];
    await git(mirrorDir, ['fetch', '--quiet', '--prune', '--prune-tags', '--tags', '--force', 'origin'], { config, timeoutMs: NETWORK_TIMEOUT_MS, what });
    return;
  }
  await fs.mkdir(path.dirname(mirrorDir), { recursive: true });
  await removePartialMirrors(mirrorDir);
  // Clone beside the final path, then rename: a crash leaves a temp dir, never a half mirror.
  const tmp = await fs.mkdtemp(path.resolve(mirrorDir) + PARTIAL_MIRROR_INFIX);
  try {
    // --no-local: hard-linked objects would share inodes with the source's owner, who could
    // rewrite them later; the transport copies and (fsckObjects) verifies every object instead.
    const args = ['clone', '--quiet', '--mirror', '--no-local', '--', url, tmp];
    await git(null, args, { config: ['transfer.fsckObjects=true'], timeoutMs: NETWORK_TIMEOUT_MS, what });
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
export async function lsRemoteTags(source: string, timeoutMs = LS_REMOTE_TIMEOUT_MS): Promise<Map<string, string>> {
  const url = checkSource(source);
  if (isLocal(url) && !(await exists(url))) throw new NotFoundError(`git source not found: ${source}`);
  const { stdout } = await git(null, ['ls-remote', '--tags', '--', url], { timeoutMs, what: `git ls-remote ${source}` });
  const tags = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([0-9a-f]{40}|[0-9a-f]{64})\trefs\/tags\/(.+?)(\^\{\})?$/.exec(line);
    // The peeled line (^{}) names the commit of an annotated tag: it wins over the tag object.
    if (m && (m[3] !== undefined || !tags.has(m[2]!))) tags.set(m[2]!, m[1]!);
  }
  return tags;
}

/** Does `url` answer git's protocol? (A short, quiet `git ls-remote`; any failure is "no".) */
export async function answersGit(url: string, timeoutMs = 15_000): Promise<boolean> {
  try {
    await git(null, ['ls-remote', '--heads', '--', checkSource(url)], { timeoutMs });
    return true;
  } catch {
    return false;
  }
}

/** Tag names of the mirror (short names, as git stores them; unvalidated). */
export async function listTags(mirrorDir: string): Promise<string[]> {
  const { stdout } = await git(mirrorDir, ['for-each-ref', '--format=%(refname:strip=2)', 'refs/tags/']);
  return stdout.split('\n').filter((l) => l.length > 0);
}

// Tags we resolve come from parsed versions; anything else (^, ~, :, .., spaces) is refused.
export const SAFE_TAG = /^(?!.*\.\.)[0-9A-Za-z][0-9A-Za-z._+-]*$/;

/** The commit a tag points at (annotated tags peeled), or null when there is no such tag. */
export async function resolveTagCommit(mirrorDir: string, tag: string): Promise<string | null> {
  if (!SAFE_TAG.test(tag)) throw new UsageError(`not a safe tag name: ${JSON.stringify(tag)}`);
  // Full ref name: a tag can never be read as an option, a branch or another rev expression.
  const r = await gitAllowingFailure(mirrorDir, ['rev-parse', '--verify', '--quiet', '--end-of-options', `refs/tags/${tag}^{commit}`]);
  if (r.exitCode === 1 && r.stdout.trim() === '') return null;
  if (r.exitCode !== 0) throw new ProcessError(r.argv, r.exitCode, undefined, tailLines(r.stderr));
  return r.stdout.trim();
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
  const controller = new AbortController();
  const child = execa('git', args, {
    env: gitEnv(), extendEnv: false, stdin: 'ignore', encoding: 'buffer', buffer: { stdout: false, stderr: true },
    timeout: ARCHIVE_TIMEOUT_MS, cancelSignal: controller.signal, reject: false,
  });
  // Handed over through a PassThrough at once: execa resumes an unread stdout on the next tick
  // (buffer: false), which would drop the archive's first bytes while the caller is still setting up.
  const stdout = new PassThrough();
  pipeline(child.stdout, stdout, () => {}); // errors reach the reader through `stdout` itself
  let gitEnded = false;
  let readerStoppedEarly = false;
  child.stdout.once('end', () => (gitEnded = true));
  const stoppedByReader = () => (readerStoppedEarly ||= !gitEnded);
  stdout.once('close', stoppedByReader);

  const done = child.then((r) => {
    if (r.exitCode === 0 && !r.failed) return;
    // The reader closed the stream or cancelled before git had written everything: git's broken
    // pipe, connection reset or SIGTERM is a consequence, and the reader holds the real reason.
    if (readerStoppedEarly) return;
    const stderr = Buffer.from(r.stderr ?? new Uint8Array()).toString('utf8');
    throw new ProcessError(['git', ...args], r.exitCode, r.signal ?? undefined, tailLines(stderr || (r.shortMessage ?? '')), 'git archive');
  });
  const cancel = () => {
    stoppedByReader();
    // Unread bytes would keep git's stdout open, and execa waits for it to end: drop them too.
    stdout.destroy();
    controller.abort();
  };
  return { stdout, done, cancel };
}
