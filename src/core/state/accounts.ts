/**
 * The service account as `<root>/etc/passwd` and `<root>/etc/group` say it, read directly.
 * Never asks NSS: under a sandbox --root the account lives in the sandbox's own files.
 */

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The app's service account: owns /var/lib/smolotchi and /run/smolotchi, never root. */
export const SERVICE_USER = 'smolotchi';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Supplementary groups (gpio, i2c, spi on a Pi) from the group file, the primary one excluded. */
  groups: number[];
}

const rows = (text: string): string[][] => text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));

function missingIsEmpty(err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
  throw err;
}

/** The account `name` from the texts of a passwd and a group file; null when absent or malformed. */
function accountFrom(passwd: string, group: string, name: string): Account | null {
  const entry = rows(passwd).find((f) => f[0] === name && f.length >= 7);
  if (!entry) return null;
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  const groups = rows(group)
    .filter((f) => f.length >= 4 && (f[3] ?? '').split(',').includes(name))
    .map((f) => Number(f[2]))
    .filter((g) => Number.isInteger(g) && g !== gid);
  return { name, uid, gid, home: entry[5] ?? '/', groups: [...new Set(groups)].sort((a, b) => a - b) };
}

/**
 * Look an account up in `<root>/etc/passwd` and `<root>/etc/group` directly (not NSS): under a
 * sandbox --root the account lives in the sandbox's files, and on a device both are root-owned.
 */
export async function readAccount(root: string, name = SERVICE_USER): Promise<Account | null> {
  const read = (file: string) => readFile(path.join(root, 'etc', file), 'utf8').catch(missingIsEmpty);
  return accountFrom(await read('passwd'), await read('group'), name);
}

/** readAccount for synchronous callers (the history opens synchronously). */
export function readAccountSync(root: string, name = SERVICE_USER): Account | null {
  const read = (file: string) => {
    try {
      return readFileSync(path.join(root, 'etc', file), 'utf8');
    } catch (err) {
      return missingIsEmpty(err);
    }
  };
  return accountFrom(read('passwd'), read('group'), name);
}
