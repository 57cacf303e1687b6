/**
 * The one lock of every mutating command (pid, start time, boot id), in root's own /run folder.
 * Never steals a live holder's lock, takes a foreign one without --force, or follows a link.
 */

import { killPoint } from '../killpoint.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSync, constants, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LockHeldError } from '../errors.js';
import { ensurePrivateDir } from './private-dir.js';
import { bootId, hostName, isSameLiveProcess, processStartTime } from './proc.js';

/**
 * The one lock of every mutating command, in the tool's root-only folder (/run/smolotchi-release):
 * the service user can neither plant, read nor delete it. Every file is created exclusively
 * (O_EXCL) or without following links (O_NOFOLLOW).
 */

export interface LockInfo {
  pid: number;
  startTime: string | null;
  bootId: string;
  host: string;
  purpose: string;
  since: string;
}


export function readLock(file: string): LockInfo | null {
  try {
    // O_NOFOLLOW: a link in place of the lock is no lock, and is never read through.
    const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    let text: string;
    try {
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
    const info = JSON.parse(text) as LockInfo;
    return typeof info.pid === 'number' ? info : null;
  } catch {
    return null;
  }
}

export function describeHolder(info: LockInfo): string {
  return `pid ${info.pid} (${info.purpose}) on ${info.host} since ${info.since}`;
}

/**
 * A lock written on another host or during another boot: /run is a tmpfs, so such a lock means the
 * folder is shared with another machine (or the clock of this one cannot be read). Its pid says
 * nothing here, so it is never taken over without --force.
 */
export function isForeign(info: LockInfo): boolean {
  return info.bootId !== bootId() || info.host !== hostName();
}

/** A lock whose holder is gone (or was never fully written) may be taken over. */
function isStale(info: LockInfo | null): boolean {
  return info === null || (!isForeign(info) && !isSameLiveProcess(info.pid, info.startTime, info.bootId));
}

/**
 * Create `file` holding `content`, failing with EEXIST if it exists: the content is written to a
 * private temp file first and hard-linked into place, so the lock is never seen half-written.
 */
function createExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    // No fsync: other processes see the page cache, and a power cut empties /run (tmpfs); under
    // --root on a disk, a lock left empty by one reads as no holder and is taken over (isStale).
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

function sameHolder(a: LockInfo | null, b: LockInfo | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class ReleaseLock {
  private released = false;
  constructor(
    readonly file: string,
    readonly info: LockInfo,
  ) {}

  /**
   * Stopping units may have systemd delete runtime directories: put our lock back if it vanished,
   * so a second command cannot start in the middle of our deploy.
   */
  reassert(): void {
    if (this.released) return;
    if (sameHolder(readLock(this.file), this.info)) return;
    ensurePrivateDir(path.dirname(this.file), 'lock folder');
    createExclusive(this.file, JSON.stringify(this.info));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    // Only remove the lock if it is still ours.
    if (sameHolder(readLock(this.file), this.info)) {
      for (const f of [this.file, `${this.file}.json`]) {
        try {
          unlinkSync(f);
        } catch {
          /* already gone */
        }
      }
    }
  }
}

/** Take over a dead holder's lock under a short-lived guard so two takers cannot both win. */
function takeOverStale(file: string, seen: LockInfo | null, content: string): boolean {
  const guard = `${file}.takeover`;
  const mine = JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid), bootId: bootId(), host: hostName() });
  if (!createExclusive(guard, mine)) {
    const other = readLock(guard);
    if (other && isStale(other as LockInfo)) unlinkSafe(guard);
    return false;
  }
  try {
    if (!sameHolder(readLock(file), seen)) return false;
    // Move the dead holder's file aside rather than deleting it: renaming is atomic.
    renameSync(file, `${file}.stale`);
    return createExclusive(file, content);
  } finally {
    unlinkSafe(guard);
  }
}

function unlinkSafe(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* gone */
  }
}

export interface AcquireOptions {
  purpose: string;
  /** Seconds to wait for a live holder; 0 = fail at once with exit 75. */
  waitSeconds?: number;
  /** Take over a lock from another host or boot (never a live holder's on this one). */
  force?: boolean;
}

/** Write the human-readable sidecar afresh (O_EXCL after unlinking whatever was there): no link is ever followed. */
function writeSidecar(file: string, info: LockInfo): void {
  unlinkSafe(file);
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, JSON.stringify(info, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
}

export async function acquireLock(file: string, options: AcquireOptions): Promise<ReleaseLock> {
  ensurePrivateDir(path.dirname(file), 'lock folder');
  const info: LockInfo = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    bootId: bootId(),
    host: hostName(),
    purpose: options.purpose,
    since: new Date().toISOString(),
  };
  const content = JSON.stringify(info);
  const deadline = Date.now() + (options.waitSeconds ?? 0) * 1000;
  let waiting = false;
  for (;;) {
    if (createExclusive(file, content)) break;
    const holder = readLock(file);
    if (holder && isForeign(holder) && !options.force) {
      throw new LockHeldError(
        `the release lock was taken on another host or boot: ${describeHolder(holder)}, boot id ${holder.bootId}`,
        'if no release command runs there any more, take the lock over with `smolotchi release recover --force`',
      );
    }
    if (isStale(holder) || (holder && options.force && isForeign(holder))) {
      if (takeOverStale(file, holder, content)) break;
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LockHeldError(
        `another release command holds the lock: ${describeHolder(holder!)}`,
        'wait for it to finish, or pass --wait[=SECONDS]',
      );
    }
    if (!waiting) killPoint('lock-waiting'); // tests see a waiter start waiting, without a clock
    waiting = true;
    await sleep(200);
  }
  // The app's own locks keep a .lock.json sidecar beside the lock; ours does the same.
  writeSidecar(`${file}.json`, info);
  unlinkSafe(`${file}.stale`);
  return new ReleaseLock(file, info);
}
