/**
 * Creates the service account with systemd-sysusers (or useradd) for `release init`.
 * Never runs useradd for a sandbox root: it would change the host's own /etc/passwd.
 */

import { access, constants, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './process.js';

/** How the service account was (or would be) created. */
export type UserTool = 'systemd-sysusers' | 'useradd' | null;

async function onPath(name: string): Promise<string | null> {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const file = path.join(dir, name);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** The configuration lines of a sysusers.d file (comments and blank lines dropped). */
export async function sysusersLines(confFile: string): Promise<string[]> {
  return (await readFile(confFile, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/** Which tool this host offers: systemd-sysusers when present (it also honours --root), else shadow's useradd. */
export async function userTool(sandbox: boolean): Promise<UserTool> {
  if (await onPath('systemd-sysusers')) return 'systemd-sysusers';
  // useradd would change the host's own /etc/passwd: never for a sandbox root.
  if (!sandbox && (await onPath('useradd'))) return 'useradd';
  return null;
}

/**
 * Create the system account described by our sysusers.d file. Under a sandbox root,
 * `systemd-sysusers --root` writes the sandbox's etc/passwd and etc/group (no privilege needed).
 * The lines go inline: with --root, sysusers would look for a file path inside the root.
 */
export async function createSystemUser(tool: Exclude<UserTool, null>, confFile: string, root: string, account: { name: string; home: string; shell: string; comment: string }): Promise<void> {
  if (tool === 'systemd-sysusers') {
    const rootArgs = root === '/' ? [] : [`--root=${root}`];
    if (root !== '/') await mkdir(path.join(root, 'etc'), { recursive: true });
    await run('systemd-sysusers', [...rootArgs, '--inline', ...(await sysusersLines(confFile))], {}, 'systemd-sysusers');
    return;
  }
  // --force: a group of that name left behind by an earlier account is reused, not an error.
  await run('groupadd', ['--system', '--force', account.name], {}, 'groupadd');
  await run(
    'useradd',
    ['--system', '--gid', account.name, '--home-dir', account.home, '--no-create-home', '--shell', account.shell, '--comment', account.comment, account.name],
    {},
    'useradd',
  );
}
