/**
 * Who may own what root trusts, and the owner and mode check that refuses anything else (exit 4).
 * Never trusts a file another user owns, or one its group or others can write.
 */

import type { Stats } from 'node:fs';
import { IntegrityError } from './errors.js';

/**
 * Who may own what root trusts: root, or the user running the tool (so a --root sandbox run by an
 * unprivileged user, tests and the demo work). On the device mutating commands run as root, so
 * there it means root alone.
 */
export function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === process.getuid?.();
}

const GROUP_OTHER_WRITE = 0o022;

/**
 * Refuse (exit 4) a file or folder whose owner or mode lets someone else change what root reads:
 * another owner could replace it, a group- or world-writable one could be edited by that group.
 */
export function checkOwnerAndMode(st: Stats, what: string, hint?: string): void {
  if (!trustedOwner(st.uid)) throw new IntegrityError(`${what} is owned by uid ${st.uid}, not root`, hint ?? `chown root ${what}: root must not trust what another user can replace`);
  if (st.mode & GROUP_OTHER_WRITE) throw new IntegrityError(`${what} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`, hint ?? `chmod go-w ${what}`);
}
