/**
 * The one spawn for release code: pip, build backends, byte-compile, smoke import, health check.
 * Never runs it as root: service user, own PID namespace, no capabilities, minimal environment.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReleaseError } from '../core/errors.js';
import { runAllowingFailure, type RunOptions, type RunResult } from './process.js';
import { SERVICE_PATH } from '../core/layout.js';

/**
 * The one way release code is started: the smoke import, pip and its build backends, byte-compile
 * of the venv and the release's health check. Root never runs them itself: a release is code from
 * a possibly unsigned source, so it runs as the service user, in a fresh PID namespace (nothing it
 * forks outlives the step to touch the venv later), with no capabilities, no new privileges and a
 * minimal environment (no root HOME, none of the operator's variables, a fixed PATH).
 */

export interface ServiceIdentity {
  name: string;
  uid: number;
  gid: number;
  /** True when the tool (root) drops to another user; false when it already is that user. */
  switched: boolean;
  /** Why this identity: shown with --verbose. */
  reason: string;
}

/** The user every unit runs as (the policy forces User=/Group= to it). */
export const SERVICE_USER = 'smolotchi';
/** Test-only, honoured under a --root sandbox alone: which existing user plays the service user. */
export const TEST_SERVICE_USER_ENV = 'SMOLOTCHI_TEST_SERVICE_USER';

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * The user's entry as NSS (getent) would give it, read from /etc/passwd when that file alone
 * decides: nsswitch.conf asks `files` first (a hit there is final) and exactly one well-formed line
 * names the user. Anything else (no such line, a line glibc might read differently, another source
 * first, an LDAP or systemd user) asks getent, as before. Why: getent is a blocking spawn of
 * 15-30 ms on every install, and a device's service user is a plain line of /etc/passwd (useradd
 * --system). Always the host's database, as getent's, whatever --root names.
 */
function lookupUser(name: string): { uid: number; gid: number } | null {
  if (!USER_NAME.test(name)) return null;
  const local = fromFiles(name);
  if (local) return local;
  // getent's own answer, asked ahead by prefetchServiceIdentity: the same question, only earlier.
  if (asked.has(name)) return asked.get(name)!;
  return getentUser(name);
}

function fromFiles(name: string): { uid: number; gid: number } | null {
  return filesFirst(readOrNull('/etc/nsswitch.conf')) ? passwdEntry(readOrNull('/etc/passwd'), name) : null;
}

/** getent's answers asked ahead, by user name, once they are in (null: no such user). */
const asked = new Map<string, { uid: number; gid: number } | null>();

function getentLine(line: string): { uid: number; gid: number } | null {
  const [, , uid, gid] = line.trim().split(':');
  return uid && gid ? { uid: Number(uid), gid: Number(gid) } : null;
}

function getentUser(name: string): { uid: number; gid: number } | null {
  try {
    return getentLine(execFileSync('getent', ['passwd', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return null;
  }
}

/** The user resolveServiceIdentity looks up for these options. */
function wantedUser(opts: { deviceRoot: boolean; env: NodeJS.ProcessEnv }): string {
  return (opts.deviceRoot ? undefined : opts.env[TEST_SERVICE_USER_ENV]) || SERVICE_USER;
}

/**
 * Start the getent lookup resolveServiceIdentity will need when /etc/passwd cannot answer (a
 * sandbox without the user, an NSS-only user), so its 15-30 ms overlap other work instead of
 * blocking the loop later. An answer not in yet when it is needed is asked again, synchronously.
 */
export function prefetchServiceIdentity(opts: { deviceRoot: boolean; env: NodeJS.ProcessEnv }): void {
  const name = wantedUser(opts);
  if ((process.getuid?.() ?? 0) !== 0 || !USER_NAME.test(name) || asked.has(name) || fromFiles(name)) return;
  runAllowingFailure('getent', ['passwd', '--', name]).then(
    (r) => void asked.set(name, r.exitCode === 0 ? getentLine(r.stdout) : null),
    () => {}, // not started: the synchronous lookup tries, and decides, as before
  );
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Whether nsswitch.conf has one `passwd:` line whose first source is a plain `files` (no action
 * after it): then a user found in /etc/passwd is what getent returns. No file, or any doubt: false.
 */
export function filesFirst(nsswitch: string | null): boolean {
  if (nsswitch === null) return false;
  const lines = nsswitch.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => /^passwd\s*:/.test(l));
  if (lines.length !== 1) return false;
  const sources = lines[0]!.replace(/^passwd\s*:/, '').trim().split(/\s+/);
  return sources[0] === 'files' && !(sources[1] ?? '').startsWith('[');
}

/** An id as every parser reads it alike: plain decimal, below 2^32 - 1 (the "no id" value). */
const ID = /^(0|[1-9][0-9]{0,9})$/;

/**
 * The uid and gid of the one line of a passwd file naming `name`, when that line is unambiguous
 * (seven fields, decimal ids); null when there is no such line, several, or one glibc might parse
 * otherwise: the caller then asks getent, so a malformed line is judged exactly as before.
 */
export function passwdEntry(passwd: string | null, name: string): { uid: number; gid: number } | null {
  if (passwd === null) return null;
  // Leading blanks count as glibc skips them: such a line naming the user is a doubt, not a miss.
  const named = passwd.split('\n').filter((l) => l.trimStart().split(':')[0] === name);
  if (named.length !== 1) return null;
  const fields = named[0]!.split(':');
  if (fields.length !== 7 || fields[0] !== name) return null;
  const [, , uid, gid] = fields as [string, string, string, string];
  if (!ID.test(uid) || !ID.test(gid) || Number(uid) >= 0xffffffff || Number(gid) >= 0xffffffff) return null;
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Root drops to the service user when it exists (on a device it must: exit 1 otherwise); anyone
 * else (a --root sandbox run by a developer) runs release code as themselves, through the same path.
 */
export function resolveServiceIdentity(opts: { deviceRoot: boolean; env: NodeJS.ProcessEnv }): ServiceIdentity {
  const uid = process.getuid?.() ?? 0;
  const testUser = opts.deviceRoot ? undefined : opts.env[TEST_SERVICE_USER_ENV];
  const wanted = wantedUser(opts);
  if (uid === 0) {
    const found = lookupUser(wanted);
    // Never root again through a test hook: that would undo the whole point.
    if (found && found.uid !== 0) return { name: wanted, ...found, switched: true, reason: `root runs release code as ${wanted}` };
    if (opts.deviceRoot) {
      throw new ReleaseError(`the service user ${wanted} does not exist: release code is never run as root`, undefined, `create it: useradd --system --home-dir /var/lib/smolotchi --shell /usr/sbin/nologin ${wanted}`);
    }
    if (testUser) throw new ReleaseError(`${TEST_SERVICE_USER_ENV}=${testUser}: no such user (or it is root)`);
  }
  const me = os.userInfo();
  return { name: me.username, uid, gid: process.getgid?.() ?? 0, switched: false, reason: `no ${wanted} user to switch to under --root: release code runs as the invoking user ${me.username}` };
}

export interface ServiceRunOptions extends Omit<RunOptions, 'extendEnv'> {
  as: ServiceIdentity;
  /**
   * Folders the process sees read-only (a bind mount of its own), whoever owns them: for release
   * code that runs while some of its tree is still the service user's. Only with a switch of user.
   */
  readOnly?: string[];
}

/** What release code gets to see of the environment: only what the step names, over a fixed base. */
export function serviceEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: SERVICE_PATH, HOME: '/nonexistent', LANG: 'C.UTF-8', PYTHONNOUSERSITE: '1' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Run `file args` as the service identity; the result is reported, not thrown, like runAllowingFailure. */
export async function runAsService(file: string, args: string[], options: ServiceRunOptions): Promise<RunResult & { signal?: string }> {
  const { as, env, readOnly = [], ...rest } = options;
  const base = { ...rest, env: serviceEnv(env), extendEnv: false };
  if (!as.switched) return runAllowingFailure(file, args, base);
  // unshare: the child is PID 1 of a new namespace, so everything it started dies with it.
  // setpriv: real and effective ids, no supplementary groups, no capabilities left, no_new_privs.
  const drop = [
    'setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--',
  ];
  if (readOnly.length === 0) return runAllowingFailure('unshare', ['--pid', '--fork', '--kill-child', '--', ...drop, file, ...args], base);
  // Absolute paths only: the list ends at the first `--`, and mount must never read one as an option.
  if (readOnly.some((dir) => !path.isAbsolute(dir))) throw new Error(`read-only folders must be absolute paths: ${readOnly.join(' ')}`);
  // A private mount namespace: root binds each folder read-only onto itself (folders as arguments,
  // never as script text), then the same drop; a mount that fails runs nothing.
  const bind = 'while [ "$1" != -- ]; do mount --bind -o ro -- "$1" "$1" || exit 125; shift; done; shift; exec "$@"';
  return runAllowingFailure('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--', '/bin/sh', '-c', bind, 'sh', ...readOnly, '--', ...drop, file, ...args], base);
}
