/**
 * The one spawn for release code: pip, build backends, byte-compile, smoke import, health check.
 * Never runs it as root: service user, own PID namespace, no capabilities, minimal environment.
 */

import { execFileSync } from 'node:child_process';
import os from 'node:os';
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

function lookupUser(name: string): { uid: number; gid: number } | null {
  if (!USER_NAME.test(name)) return null;
  try {
    const line = execFileSync('getent', ['passwd', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const [, , uid, gid] = line.split(':');
    return uid && gid ? { uid: Number(uid), gid: Number(gid) } : null;
  } catch {
    return null;
  }
}

/**
 * Root drops to the service user when it exists (on a device it must: exit 1 otherwise); anyone
 * else (a --root sandbox run by a developer) runs release code as themselves, through the same path.
 */
export function resolveServiceIdentity(opts: { deviceRoot: boolean; env: NodeJS.ProcessEnv }): ServiceIdentity {
  const uid = process.getuid?.() ?? 0;
  const testUser = opts.deviceRoot ? undefined : opts.env[TEST_SERVICE_USER_ENV];
  const wanted = testUser || SERVICE_USER;
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
}

/** What release code gets to see of the environment: only what the step names, over a fixed base. */
export function serviceEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: SERVICE_PATH, HOME: '/nonexistent', LANG: 'C.UTF-8', PYTHONNOUSERSITE: '1' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Run `file args` as the service identity; the result is reported, not thrown, like runAllowingFailure. */
export async function runAsService(file: string, args: string[], options: ServiceRunOptions): Promise<RunResult & { signal?: string }> {
  const { as, env, ...rest } = options;
  const base = { ...rest, env: serviceEnv(env), extendEnv: false };
  if (!as.switched) return runAllowingFailure(file, args, base);
  // unshare: the child is PID 1 of a new namespace, so everything it started dies with it.
  // setpriv: real and effective ids, no supplementary groups, no capabilities left, no_new_privs.
  const drop = [
    '--pid', '--fork', '--kill-child', '--',
    'setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--',
  ];
  return runAllowingFailure('unshare', [...drop, file, ...args], base);
}
