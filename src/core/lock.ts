import { killPoint } from './killpoint.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { LockHeldError } from './errors.js';
import { bootId, hostName, isSameLiveProcess, processStartTime } from './proc.js';

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
    const info = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    return typeof info.pid === 'number' ? info : null;
  } catch {
    return null;
  }
}

export function describeHolder(info: LockInfo): string {
  return `pid ${info.pid} (${info.purpose}) on ${info.host} since ${info.since}`;
}

/** A lock whose holder is gone (or was never fully written) may be taken over. */
function isStale(info: LockInfo | null): boolean {
  return info === null || !isSameLiveProcess(info.pid, info.startTime, info.bootId);
}

/**
 * Create `file` holding `content`, failing with EEXIST if it exists: the content is written to a
 * private temp file first and hard-linked into place, so the lock is never seen half-written.
 */
function createExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
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
    mkdirSync(path.dirname(this.file), { recursive: true });
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
  const mine = JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid), bootId: bootId() });
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
}

export async function acquireLock(file: string, options: AcquireOptions): Promise<ReleaseLock> {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
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
    if (isStale(holder)) {
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
  writeFileSync(`${file}.json`, JSON.stringify(info, null, 2) + '\n');
  unlinkSafe(`${file}.stale`);
  return new ReleaseLock(file, info);
}
