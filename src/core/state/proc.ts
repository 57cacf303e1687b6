/**
 * Facts about processes and this machine from /proc: start times, boot id, host and user names.
 * Never takes a pid alone as proof a process lives: a reused pid has another start time.
 */

import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Process start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused pid apart. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function hostName(): string {
  return os.hostname();
}

export function userName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/** Is the process that wrote this record still the same live process? */
export function isSameLiveProcess(pid: number, startTime: string | null, boot: string | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (boot && boot !== bootId()) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = processStartTime(pid);
  return startTime === null || now === null || now === startTime;
}
