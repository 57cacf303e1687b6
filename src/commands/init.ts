/**
 * `release init`: account, folders, env file and boot unit a device needs first; idempotent.
 * Never overwrites an operator's file, and never changes the host's accounts from a sandbox root.
 */

import path from 'node:path';
import { createSystemUser, userTool } from '../adapters/system-user.js';
import { readAccount, SERVICE_USER, type Account } from '../core/state/accounts.js';
import { ensureBootUnit } from '../core/bootstrap/boot-unit.js';
import type { InitChange } from '../core/bootstrap/changes.js';
import { createOnce, pathExists } from '../core/bootstrap/create-once.js';
import { ensureFolder, folderSpecs } from '../core/bootstrap/folders.js';
import { envFileTemplate } from '../core/bootstrap/settings-doc.js';
import type { Context } from '../core/context.js';
import { ReleaseError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { isDeviceRoot } from '../core/layout.js';
import { withReleaseLock } from '../core/mutation/mutation.js';
import { bundledPackagingDir } from '../core/units/units.js';

export interface InitOptions {
  dryRun?: boolean;
  /** Seconds to wait for another release command's lock (0: exit 75 at once). */
  waitSeconds?: number;
}

export interface InitResult {
  command: 'init';
  /** The same word as the other commands': 'dry-run' changed nothing. */
  status: 'initialized' | 'dry-run';
  root: string;
  changes: InitChange[];
  exitCode: number;
}

const ACCOUNT = { name: SERVICE_USER, home: '/var/lib/smolotchi', shell: '/usr/sbin/nologin', comment: 'smolotchi app' };

/** The service account: kept when it exists, else created with systemd-sysusers (or useradd). */
async function ensureUser(ctx: Context, dryRun: boolean): Promise<{ change: InitChange; account: Account | null }> {
  const { root } = ctx.layout;
  const passwd = path.join(root, 'etc', 'passwd');
  const existing = await readAccount(root);
  if (existing) return { account: existing, change: { kind: 'user', path: passwd, action: 'kept', detail: `${SERVICE_USER} uid ${existing.uid} gid ${existing.gid}` } };
  const tool = await userTool(!isDeviceRoot(ctx.layout));
  if (tool === null) {
    const why = isDeviceRoot(ctx.layout) ? 'neither systemd-sysusers nor useradd is installed' : 'no systemd-sysusers to write the sandbox root\'s etc/passwd (useradd would change the host\'s)';
    if (isDeviceRoot(ctx.layout)) throw new ReleaseError(`cannot create the ${SERVICE_USER} user: ${why}`);
    return { account: null, change: { kind: 'user', path: passwd, action: 'skipped', detail: why } };
  }
  if (dryRun) return { account: null, change: { kind: 'user', path: passwd, action: 'created', detail: `${SERVICE_USER} (system user, with ${tool})` } };
  await createSystemUser(tool, path.join(bundledPackagingDir(), 'sysusers', 'smolotchi.conf'), root, ACCOUNT);
  const account = await readAccount(root);
  if (!account) throw new ReleaseError(`${tool} ran but ${passwd} has no ${SERVICE_USER} entry`);
  return { account, change: { kind: 'user', path: passwd, action: 'created', detail: `${SERVICE_USER} uid ${account.uid} gid ${account.gid} (${tool})` } };
}

/**
 * `smolotchi release init`: make a device ready for its first install. Idempotent: a second run
 * keeps everything; the operator's env file is written only when missing.
 */
export async function init(options: InitOptions, ctx: Context): Promise<InitResult> {
  const dryRun = Boolean(options.dryRun);
  // On the device it creates a system user and root-owned folders: root's job, like every mutation.
  if (isDeviceRoot(ctx.layout) && process.getuid?.() !== 0) {
    throw new ReleaseError('init must run as root on the device', ExitCode.failed, 'run it with sudo, or use --root DIR for a sandbox');
  }
  // Under the release lock: an install running meanwhile writes units and uses the folders init sets modes on.
  if (dryRun) return initLocked(ctx, true);
  return withReleaseLock(ctx, 'init', options.waitSeconds, () => initLocked(ctx, false));
}

async function initLocked(ctx: Context, dryRun: boolean): Promise<InitResult> {
  const changes: InitChange[] = [];
  const { change, account } = await ensureUser(ctx, dryRun);
  changes.push(change);
  for (const spec of folderSpecs(ctx.layout)) changes.push(await ensureFolder(spec, account, dryRun));
  const env = ctx.layout.envFile;
  if (await pathExists(env)) changes.push({ kind: 'file', path: env, action: 'kept', detail: "the operator's settings: never rewritten" });
  else {
    // Root's alone (systemd reads it as root): the tool refuses git credentials in an env file others can read.
    if (!dryRun) await createOnce(env, envFileTemplate(), 0o600);
    changes.push({ kind: 'file', path: env, action: 'created', detail: 'every setting commented out at its default' });
  }
  changes.push(...(await ensureBootUnit(ctx, dryRun)));
  return { command: 'init', status: dryRun ? 'dry-run' : 'initialized', root: ctx.layout.root, changes, exitCode: ExitCode.ok };
}
