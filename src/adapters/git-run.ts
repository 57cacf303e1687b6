/**
 * Runs one git command, through simple-git's unsafe-option guard when it carries an operator's string.
 * Never passes root's GIT_* variables or config to git, and never runs without a deadline.
 */

import { createRequire } from 'node:module';
import path from 'node:path';
import { formatWithOptions, inspect, type InspectOptions } from 'node:util';
import { UsageError } from '../core/errors.js';
import { killAfter, ProcessError, spawnChild, tailLines, waitForExit, type RunResult } from './process.js';

/**
 * One git command with our own fences around it: a scrubbed environment, no configuration but the
 * mirror's own, an explicit --git-dir and a deadline. Two routes: `git`/`gitAllowingFailure` go
 * through simple-git with its unsafe-option guard on, for every call that carries a string the
 * operator typed (checked by git.ts first); `gitDirect` spawns git itself, for argv that is
 * entirely our own code's. git.ts says at each call which route it takes and why.
 */

const QUERY_TIMEOUT_MS = 30_000;

// Schemes git may speak for us; ext:: and fd:: run local commands, so they never make the list.
export const ALLOWED_SCHEMES = ['https', 'http', 'ssh', 'git', 'file'];

/** HOME for git: a folder that does not exist, so no ~/.gitconfig, ~/.config/git/attributes or the like is ever read. */
export const GIT_HOME = '/nonexistent';

/** Settings every call carries: no attributes file outside the tree (its filters would run, or change what `git archive` writes). */
const ALWAYS_CONFIG = ['core.attributesFile=/dev/null'];

/**
 * Never passed on from root's environment: every GIT_* variable (ours are set below; the rest
 * would point git at another repo or inject config), XDG_CONFIG_HOME, and the interactive helpers
 * (editor, pager, askpass) a fetch never needs. simple-git's environment guard refuses these too.
 */
const NEVER_INHERITED = /^(GIT_.*|XDG_CONFIG_HOME|EDITOR|VISUAL|PAGER|SSH_ASKPASS|PREFIX|SMOLOTCHI_GIT_.*)$/i;

/**
 * Root's git runs with no configuration but the mirror's own: a filter, smudge command or
 * attributes file in root's global or the system config would run or change what a release
 * contains (git archive applies attributes). ssh finds root's keys through the password
 * database, not HOME, so ssh sources keep working. The whole environment: pass it with extendEnv off.
 */
export function gitEnv(auth: GitAuth | null = null): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !NEVER_INHERITED.test(k)) env[k] = v;
  return {
    ...env,
    ...(auth && authEnv(auth)),
    GIT_TERMINAL_PROMPT: '0', // a service never has anyone to type a password: fail, don't hang
    GIT_CONFIG_NOSYSTEM: '1', // the host's /etc/gitconfig is not part of our contract
    GIT_CONFIG_GLOBAL: '/dev/null', // nor is root's ~/.gitconfig
    HOME: GIT_HOME,
    // Second fence behind checkSource: also covers redirects, insteadOf rewrites and submodules.
    GIT_ALLOW_PROTOCOL: ALLOWED_SCHEMES.join(':'),
  };
}

/** Credentials of an http(s) source, for git's credential helper only (core/build/source-credentials.ts). */
export interface GitAuth {
  protocol: 'http' | 'https';
  host: string;
  username: string;
  password: string;
}

/**
 * Credentials reach git through the environment, never argv: /proc/<pid>/cmdline is world-readable
 * (the service user could read a token from `ps` during a clone), /proc/<pid>/environ is root's only.
 */
const authEnv = (auth: GitAuth): Record<string, string> => ({
  SMOLOTCHI_GIT_AUTH_PROTOCOL: auth.protocol,
  SMOLOTCHI_GIT_AUTH_HOST: auth.host,
  SMOLOTCHI_GIT_USERNAME: auth.username,
  SMOLOTCHI_GIT_PASSWORD: auth.password,
});

/**
 * git's credential helper for a source with credentials: answers `get` from the environment above,
 * and only for the protocol and host the operator named, so a redirect to another host or to plain
 * http gets nothing. The empty helper first clears any other helper from the list.
 */
const CREDENTIAL_HELPER =
  '!f() { test "$1" = get || return 0; p=; h=; ' +
  'while IFS= read -r l && [ -n "$l" ]; do case "$l" in protocol=*) p="${l#protocol=}" ;; host=*) h="${l#host=}" ;; esac; done; ' +
  '[ "$p" = "$SMOLOTCHI_GIT_AUTH_PROTOCOL" ] && [ "$h" = "$SMOLOTCHI_GIT_AUTH_HOST" ] || return 0; ' +
  'printf \'username=%s\\npassword=%s\\n\' "$SMOLOTCHI_GIT_USERNAME" "$SMOLOTCHI_GIT_PASSWORD"; }; f';
const authConfig = (auth: GitAuth | null | undefined): string[] => (auth ? ['credential.helper=', `credential.helper=${CREDENTIAL_HELPER}`] : []);

/** The variables above that simple-git's environment guard must let through (strict mode refuses any other). */
const OUR_ENV = [
  'GIT_TERMINAL_PROMPT', 'GIT_CONFIG_NOSYSTEM', 'GIT_CONFIG_GLOBAL', 'GIT_ALLOW_PROTOCOL', 'HOME',
  'SMOLOTCHI_GIT_AUTH_PROTOCOL', 'SMOLOTCHI_GIT_AUTH_HOST', 'SMOLOTCHI_GIT_USERNAME', 'SMOLOTCHI_GIT_PASSWORD',
];

/**
 * Config keys our calls set that simple-git does not list as known-safe; strict mode refuses any
 * other. Each one tightens git: core.attributesFile=/dev/null; maintenance.autoDetach=false (no
 * background work outlives the release lock); the gpg.* keys make verify-tag accept only ssh
 * signatures from our allowed_signers file, with the openpgp and x509 verifiers set to `false`.
 */
const OUR_CONFIG = [
  'core.attributesFile', 'maintenance.autoDetach', 'credential.helper',
  'gpg.format', 'gpg.ssh.program', 'gpg.ssh.allowedSignersFile', 'gpg.openpgp.program', 'gpg.x509.program',
];

/**
 * Every call names the repository with --git-dir: an explicit git dir is never "discovered", so
 * git's safe.directory ownership check does not apply to the root-owned mirror and no
 * `-c safe.directory=*` is needed. It stays in argv (not GIT_DIR) so recovery can see in /proc
 * that a live git is using the mirror.
 */
function gitDirArgs(mirrorDir: string | null): string[] {
  return mirrorDir === null ? [] : [`--git-dir=${path.resolve(mirrorDir)}`];
}

/** The argv of a git we spawn ourselves (only `git archive`, which streams): the same settings as every call. */
export function gitArgs(mirrorDir: string | null, args: string[]): string[] {
  return ['--no-pager', ...ALWAYS_CONFIG.flatMap((c) => ['-c', c]), ...gitDirArgs(mirrorDir), ...args];
}

export interface GitCallOptions {
  timeoutMs?: number;
  /** Names the call in a failure message ("<what> failed (exit 128): ..."); default "git". */
  what?: string;
  /** `key=value` settings for this call only (given to git as -c). */
  config?: string[];
  /** An http(s) source's credentials, handed to git by the credential helper alone. */
  auth?: GitAuth | null;
}

/** Run git; resolves with its output and exit code whatever the code (like runAllowingFailure). */
export async function gitAllowingFailure(
  mirrorDir: string | null,
  args: string[],
  options: GitCallOptions = {},
): Promise<RunResult & { argv: string[] }> {
  const config = [...ALWAYS_CONFIG, ...(options.config ?? []), ...authConfig(options.auth)];
  const argv = ['--no-pager', ...gitDirArgs(mirrorDir), ...args];
  const shown = shownArgv(config, argv);
  const timeoutMs = options.timeoutMs ?? QUERY_TIMEOUT_MS;
  // Loaded on first use: read-only commands (status, list, history) never run git.
  const { simpleGit, GitPluginError } = await import('simple-git');
  if (options.auth) hideInDebugOutput(options.auth);
  let outcome: { exitCode: number | null; stdOut: Buffer[]; stdErr: Buffer[] } | undefined;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const git = simpleGit({
    baseDir: '/', // no repository is ever discovered from wherever root happened to start us
    config,
    abort: deadline.signal,
    strict: true,
    allowConfig: OUR_CONFIG,
    allowEnvironment: OUR_ENV,
    // --git-dir names our own root-owned mirror (never operator input) and must stay in argv (see gitDirArgs).
    unsafe: { allowUnsafeConfigPaths: true },
    // Every exit code reaches us: callers decide what a failure means (rev-parse's 1 is "no such tag").
    errors: (_error, result) => {
      outcome = result;
      return undefined;
    },
  }).env(gitEnv(options.auth));
  try {
    await git.raw(argv);
  } catch (err) {
    // The guard refused before any git ran: an option or setting slipped past our own checks.
    if (err instanceof GitPluginError) throw new UsageError(`git call refused by simple-git (${err.plugin}): ${err.message}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const text = (chunks: Buffer[] = []) => Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
  const stdout = text(outcome?.stdOut);
  const stderr = text(outcome?.stdErr);
  if (deadline.signal.aborted) {
    throw new ProcessError(shown, undefined, 'SIGINT', `no answer within ${Math.round(timeoutMs / 1000)} s`, options.what);
  }
  const code = outcome?.exitCode ?? null;
  // simple-git reports a spawn error (git not installed) as a negative code, the error's stack as stderr.
  if (code !== null && code < 0) throw new ProcessError(shown, undefined, undefined, stderr.split('\n')[0] ?? '', options.what);
  // No code: a signal we did not send (simple-git does not say which).
  if (code === null) throw new ProcessError(shown, undefined, 'a signal', tailLines(stderr), options.what);
  return { stdout, stderr, exitCode: code, argv: shown };
}

/** Credential values simple-git's debug output must never show. */
const hidden = new Set<string>();
let debugOutputFiltered = false;

/**
 * DEBUG=simple-git* prints each call's environment, and with it the credential helper's. The
 * `debug` package simple-git logs through writes every line via its one `log` function: ours
 * writes the same line with each credential value replaced by ***.
 */
function hideInDebugOutput(auth: GitAuth): void {
  // As written, and as util.inspect quotes it inside an object (a ' or \\ comes out escaped).
  for (const value of [auth.username, auth.password]) if (value !== '') hidden.add(value).add(inspect(value).slice(1, -1));
  if (debugOutputFiltered || !process.env.DEBUG) return;
  debugOutputFiltered = true;
  const requireFromSimpleGit = createRequire(createRequire(import.meta.url).resolve('simple-git'));
  const createDebug = requireFromSimpleGit('debug') as { log?: (...args: unknown[]) => void; inspectOpts?: InspectOptions };
  createDebug.log = (...args: unknown[]) => {
    let line = formatWithOptions(createDebug.inspectOpts ?? {}, ...args);
    for (const value of hidden) line = line.split(value).join('***');
    process.stderr.write(`${line}\n`);
  };
}

/** What a direct call may do besides: `meanwhile` runs once git has started (the main thread only waits for it). */
export interface DirectCallOptions extends GitCallOptions {
  meanwhile?: () => void;
}

/**
 * Run git ourselves, without simple-git; resolves with its output and exit code whatever the code
 * (like gitAllowingFailure). The same settings, environment, deadline and failure messages as
 * `git`, but simple-git's unsafe-option guard is not on this path: only argv written out in our
 * own code may come here (constant words, the mirror's resolved path, full ids and tag names that
 * passed SAFE_TAG), never a string the operator typed. Spares the install from an existing mirror
 * the ~45 ms import of simple-git, and quiet calls its answer 50 ms after git exited.
 */
export async function gitDirectAllowingFailure(
  mirrorDir: string | null,
  args: string[],
  options: DirectCallOptions = {},
): Promise<RunResult & { argv: string[] }> {
  const config = [...ALWAYS_CONFIG, ...(options.config ?? []), ...authConfig(options.auth)];
  const shown = shownArgv(config, ['--no-pager', ...gitDirArgs(mirrorDir), ...args]);
  const timeoutMs = options.timeoutMs ?? QUERY_TIMEOUT_MS;
  // gitEnv() is the whole environment, as for every call; cwd / as for simple-git's baseDir.
  const child = spawnChild('git', shown.slice(1), { env: gitEnv(options.auth), extendEnv: false, cwd: '/', stdin: 'ignore' });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  let timedOut = false;
  const deadline = setTimeout(() => (timedOut = true), timeoutMs);
  const stopTimer = killAfter(child, timeoutMs);
  options.meanwhile?.();
  const ended = await waitForExit(child);
  stopTimer();
  clearTimeout(deadline);
  const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
  const [stdout, stderr] = [text(out), text(err)];
  if (timedOut) throw new ProcessError(shown, undefined, 'SIGINT', `no answer within ${Math.round(timeoutMs / 1000)} s`, options.what);
  if (ended.error) throw new ProcessError(shown, undefined, undefined, ended.error.message, options.what);
  if (ended.code === null) throw new ProcessError(shown, undefined, 'a signal', tailLines(stderr), options.what);
  return { stdout, stderr, exitCode: ended.code, argv: shown };
}

/** gitDirectAllowingFailure that throws ProcessError unless git exits 0 (as `git` does). */
export async function gitDirect(mirrorDir: string | null, args: string[], options: DirectCallOptions = {}): Promise<RunResult> {
  return succeeded(await gitDirectAllowingFailure(mirrorDir, args, options), options.what);
}

/** Either route's answer when git exited 0; otherwise ProcessError with the stderr lines that matter. */
function succeeded<R extends RunResult & { argv: string[] }>(r: R, what: string | undefined): R {
  if (r.exitCode !== 0) throw new ProcessError(r.argv, r.exitCode, undefined, tailLines(r.stderr || r.stdout), what);
  return r;
}

/** The argv git ran with, for failure messages: simple-git puts the -c settings first. */
const shownArgv = (config: string[], argv: string[]) => ['git', ...config.flatMap((c) => ['-c', c]), ...argv];

/** Run git; throws ProcessError (argv, exit code, the stderr lines that matter) unless it exits 0. */
export async function git(mirrorDir: string | null, args: string[], options: GitCallOptions = {}): Promise<RunResult> {
  return succeeded(await gitAllowingFailure(mirrorDir, args, options), options.what);
}
