import { readFileSync } from 'node:fs';
import path from 'node:path';

export const SERVICE_USER = 'smolotchi';

/** uid and gid of the service user from <root>/etc/passwd, or null where it does not exist (sandboxes). */
export function lookupServiceUser(root: string, name = SERVICE_USER): { uid: number; gid: number } | null {
  let text: string;
  try {
    text = readFileSync(path.join(root, 'etc', 'passwd'), 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}
