/**
 * Filesystem helpers: atomic writes (temp, fsync, rename), folder fsync, removal through the trash.
 * Never leaves a torn file, or a half-deleted tree that could look complete.
 */

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm, lstat, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { killPoint } from './killpoint.js';

/**
 * One turn of the event loop, for a synchronous walk between folders: pending I/O callbacks and
 * spawned children's pipes are served.
 */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Copy one open file into another in 1 MiB chunks: a database can be larger than what should sit in memory. */
export async function copyHandle(from: FileHandle, to: FileHandle): Promise<void> {
  const buf = Buffer.alloc(1 << 20);
  for (let pos = 0; ; ) {
    const { bytesRead } = await from.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    await to.write(buf, 0, bytesRead);
    pos += bytesRead;
  }
}

/** fsync a directory so a rename or create inside it survives a power cut. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function randomSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** First half of an atomic write: the content in a fsynced temp file beside `file` (removed again on failure). */
export async function writeTemp(file: string, content: string | Buffer, mode = 0o644): Promise<string> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomSuffix()}.tmp`);
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    // A full disk must not leave a half-written temp file behind.
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  killPoint(`atomic-temp:${path.basename(file)}`);
  return tmp;
}

/** Second half: rename the temp over `file` (old or new, never torn); the caller fsyncs the folder. */
export async function commitTemp(tmp: string, file: string): Promise<void> {
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  killPoint(`atomic-renamed:${path.basename(file)}`);
}

/** Write by temp file + fsync + rename + fsync of the parent: the file is old or new, never torn. */
export async function writeFileAtomic(file: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await commitTemp(await writeTemp(file, content, mode), file);
  fsyncDir(path.dirname(file));
}

/**
 * Remove a tree so that a crash half-way can never leave something that looks complete:
 * rename it into the trash folder (atomic), then delete it from there.
 */
export async function removeViaTrash(target: string, trashDir: string): Promise<void> {
  try {
    await lstat(target);
  } catch {
    return;
  }
  await mkdir(trashDir, { recursive: true });
  const trashed = path.join(trashDir, `${path.basename(target)}.${randomSuffix()}`);
  await rename(target, trashed);
  fsyncDir(path.dirname(target));
  killPoint(`trash-renamed:${path.basename(target)}`);
  await rm(trashed, { recursive: true, force: true });
}

export async function emptyDir(dir: string): Promise<number> {
  let removed = 0;
  let entries: string[] = [];
  try {
    // Listed without a thread-pool round trip: every mutating command's recovery asks, and it is mostly empty.
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    await rm(path.join(dir, e), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** isDirectory without a thread-pool round trip, for hot paths that read a few small files. */
export function isDirectorySync(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
