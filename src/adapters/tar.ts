/**
 * Extracts release archives through ArchivePolicy, hashes files, packs reproducible tar.gz.
 * Never writes an entry the policy has not passed, nor replaces or writes through anything on disk.
 */

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, createReadStream, createWriteStream, fchmodSync, linkSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { lstat, open, readdir, readlink, rm, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type * as TarHeader from 'tar/header';
import type * as TarParse from 'tar/parse';
import type * as TarPax from 'tar/pax';
import type { HeaderData, ReadEntry } from 'tar';
import { ArchivePolicy, type AcceptedEntry, type ExtractLimits } from './archive-policy.js';
import { IntegrityError, ReleaseError } from '../core/errors.js';
import { killPoint } from '../core/killpoint.js';

export interface ExtractOptions {
  gzip: boolean;
  /** The single folder every entry must live in (stripped on the way), or null for a flat archive. */
  topLevel: string | null;
  limits?: Partial<ExtractLimits>;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
}

// Pax and GNU long-name bodies above this are refused: 64 KiB covers any path we would accept.
const MAX_META_BYTES = 64 * 1024;
// GNU tar pads archives to 10 KiB records; anything much larger after the end marker is not tar.
const MAX_TRAILING_BYTES = 1024 * 1024;
const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

const require = createRequire(import.meta.url);
interface TarParts {
  Parser: typeof TarParse.Parser;
  Header: typeof TarHeader.Header;
  Pax: typeof TarPax.Pax;
}
let tarParts: TarParts | undefined;
/**
 * The three parts of node-tar we use, loaded on first use and on their own (~20 ms of CPU; the
 * whole package's index ~40 ms): most commands never read or write an archive.
 */
function tar(): TarParts {
  return (tarParts ??= {
    Parser: (require('tar/parse') as typeof TarParse).Parser,
    Header: (require('tar/header') as typeof TarHeader).Header,
    Pax: (require('tar/pax') as typeof TarPax).Pax,
  });
}

/** Load node-tar now, while the main thread would only wait (e.g. for the mirror fetch before an extraction). */
export function preloadTar(): void {
  tar();
}

/**
 * Extract a tar (or tar.gz) stream into an empty destDir. Every entry passes ArchivePolicy before
 * anything is written; the first refusal aborts everything with IntegrityError (exit 4), and the
 * promise settles only after in-flight writes stopped, so the caller can delete destDir safely.
 */
export async function extractTarStream(input: NodeJS.ReadableStream, destDir: string, opts: ExtractOptions): Promise<ExtractResult> {
  if ((await readdir(destDir)).length > 0) throw new ReleaseError(`extraction target ${destDir} is not empty`);
  const policy = new ArchivePolicy({ topLevel: opts.topLevel, limits: opts.limits });
  const writer = new TreeWriter(destDir, policy.limits);
  const parser = new (tar().Parser)({ strict: true, zstd: false, brotli: false, maxMetaEntrySize: MAX_META_BYTES });
  // A cap on the decompressed stream itself: pax headers and padding carry no file bytes, but cost time.
  const streamBudget = policy.limits.maxTotalBytes + policy.limits.maxEntries * 1536 + 64 * 1024 * 1024;
  let streamBytes = 0;
  let trailingBytes = 0;
  let head = Buffer.alloc(0);
  let sawEof = false;
  let failure: Error | undefined;
  let active: ReadEntry | undefined;
  let queue: Promise<void> = Promise.resolve();

  let settle!: { resolve: (r: ExtractResult) => void; reject: (e: Error) => void };
  const done = new Promise<ExtractResult>((resolve, reject) => (settle = { resolve, reject }));

  const feeder = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      streamBytes += chunk.length;
      if (streamBytes > streamBudget) return callback(new IntegrityError(`archive stream larger than ${streamBudget} bytes (decompression bomb?)`));
      if (head.length < 2) {
        head = Buffer.concat([head, chunk]).subarray(0, 2);
        // node-tar would silently gunzip a second layer, past our byte accounting.
        if (head[0] === 0x1f && head[1] === 0x8b) return callback(new IntegrityError('archive is compressed twice (nested gzip)'));
      }
      if (sawEof) {
        trailingBytes += chunk.length;
        return callback(trailingBytes > MAX_TRAILING_BYTES ? new IntegrityError('too much data after the end-of-archive marker') : null);
      }
      if (parser.write(chunk)) callback();
      else parser.once('drain', () => callback());
    },
    final(callback) {
      parser.end();
      callback();
    },
  });

  const fail = (err: unknown): void => {
    if (failure) return;
    failure = asIntegrity(err);
    parser.abort(new Error('extraction aborted')); // its own error object: node-tar decorates what it is given
    active?.destroy();
    feeder.destroy(failure);
    const why = failure;
    void queue.finally(() => settle.reject(why));
  };

  parser.on('error', fail);
  parser.on('eof', () => (sawEof = true));
  parser.on('ignoredEntry', (entry: ReadEntry) => {
    if (failure) return;
    try {
      policy.checkEntry(entry); // refuses unknown types; what is left is an oversized pax header
      fail(new IntegrityError(`archive entry ${JSON.stringify(entry.path)} refused: metadata header over ${MAX_META_BYTES} bytes`));
    } catch (err) {
      fail(err);
    }
  });
  parser.on('entry', (entry: ReadEntry) => {
    if (failure) return;
    let accepted: AcceptedEntry | null;
    try {
      accepted = policy.checkEntry(entry);
    } catch (err) {
      return fail(err);
    }
    if (accepted?.kind !== 'file') entry.resume(); // no body to write: let the parser move on
    if (!accepted) return;
    const ok = accepted;
    queue = queue
      .then(async () => {
        if (failure) return;
        active = entry;
        await writer.write(ok, entry);
        active = undefined;
      })
      .catch(fail);
  });
  parser.on('end', () => {
    void queue.then(() => {
      if (failure) return;
      if (!sawEof) return fail(new IntegrityError('archive truncated: no end-of-archive marker'));
      if (writer.entries === 0) return fail(new IntegrityError('archive contains no files'));
      settle.resolve({ entries: writer.entries, bytes: writer.bytes });
    });
  });

  (opts.gzip ? pipeline(input, zlib.createGunzip(), feeder) : pipeline(input, feeder)).catch(fail);
  return done;
}

export async function extractTarFile(file: string, destDir: string, opts: ExtractOptions): Promise<ExtractResult> {
  return extractTarStream(createReadStream(file), destDir, opts);
}

/** Parser, zlib and policy failures all mean "this archive is not acceptable": exit 4, not a crash. */
function asIntegrity(err: unknown): Error {
  if (err instanceof ReleaseError) return err;
  const e = err as (Error & { code?: unknown; tarCode?: unknown }) | undefined;
  if (e && typeof e.tarCode === 'string') return new IntegrityError(`corrupt tar archive: ${e.message}`);
  if (e && typeof e.code === 'string' && e.code.startsWith('Z_')) return new IntegrityError(`corrupt or truncated gzip data: ${e.message}`);
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Writes accepted entries in archive order, counting the bytes that really reach the disk.
 * Synchronous calls (as the venv clone): a release is mostly small files, where a promise per
 * open, chmod, write and close through libuv's thread pool cost more than the syscalls themselves.
 */
class TreeWriter {
  bytes = 0;
  entries = 0;
  private readonly dirs = new Set<string>(['.']);

  constructor(
    private readonly root: string,
    private readonly limits: ExtractLimits,
  ) {}

  async write(entry: AcceptedEntry, body: ReadEntry): Promise<void> {
    const abs = path.join(this.root, entry.path);
    this.ensureDir(path.posix.dirname(entry.path));
    if (entry.kind === 'directory') this.ensureDir(entry.path);
    else if (entry.kind === 'file') await this.writeFile(abs, entry, body);
    else if (entry.kind === 'symlink') symlinkSync(entry.linkTarget as string, abs);
    else linkSync(path.join(this.root, entry.linkTarget as string), abs);
    this.entries++;
    killPoint(`extract-entry-${this.entries}`);
  }

  private ensureDir(rel: string): void {
    if (this.dirs.has(rel)) return;
    this.ensureDir(path.posix.dirname(rel));
    const abs = path.join(this.root, rel);
    mkdirSync(abs, { mode: 0o755 });
    chmodSync(abs, 0o755); // the umask must not decide whether the service user can read the release
    this.dirs.add(rel);
  }

  private async writeFile(abs: string, entry: AcceptedEntry, body: ReadEntry): Promise<void> {
    // O_EXCL + O_NOFOLLOW: never replace or write through anything already there.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const fd = openSync(abs, flags, entry.mode);
    let written = 0;
    try {
      fchmodSync(fd, entry.mode);
      for await (const chunk of body) {
        written += chunk.length;
        this.bytes += chunk.length;
        if (written > entry.size || written > this.limits.maxFileBytes) throw this.refuse(entry, 'more data than its header declared');
        if (this.bytes > this.limits.maxTotalBytes) throw this.refuse(entry, `total size over the limit of ${this.limits.maxTotalBytes} bytes`);
        for (let offset = 0; offset < chunk.length; ) offset += writeSync(fd, chunk, offset, chunk.length - offset);
      }
    } finally {
      closeSync(fd);
    }
    if (written !== entry.size) throw this.refuse(entry, `truncated (${written} of ${entry.size} bytes)`);
  }

  private refuse(entry: AcceptedEntry, why: string): IntegrityError {
    return new IntegrityError(`archive entry ${JSON.stringify(entry.path)} refused: ${why}`);
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Stream into a new private file (0600, must not exist), hashing on the way. Verifying and then
 * extracting this copy means nobody can swap the archive between the check and the use.
 */
export async function streamToFileAndHash(input: AsyncIterable<Uint8Array>, dest: string, maxBytes = Infinity): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(dest, 'wx', 0o600);
  let total = 0;
  try {
    for await (const chunk of input) {
      total += chunk.length;
      if (total > maxBytes) throw new IntegrityError(`${path.basename(dest)} is larger than ${maxBytes} bytes`);
      hash.update(chunk);
      await writeAll(handle, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
  } catch (err) {
    await handle.close();
    await rm(dest, { force: true });
    throw err;
  }
  await handle.close();
  return hash.digest('hex');
}

export async function copyAndHash(src: string, dest: string): Promise<string> {
  return streamToFileAndHash(createReadStream(src), dest);
}

/**
 * Pack srcDir as `<topLevel>/...` into a reproducible tar.gz: entries in sorted order, fixed mtime,
 * uid/gid 0, no owner names, modes reduced to 0755/0644. Same tree in, same bytes out.
 */
export async function createTarGz(srcDir: string, outFile: string, topLevel: string): Promise<void> {
  await pipeline(Readable.from(tarBlocks(srcDir, topLevel)), zlib.createGzip({ level: 9 }), createWriteStream(outFile, { mode: 0o644 }));
}

async function* tarBlocks(srcDir: string, topLevel: string): AsyncGenerator<Buffer> {
  yield tarHeader({ path: `${topLevel}/`, type: 'Directory', mode: 0o755 });
  for await (const rel of sortedTree(srcDir, '')) {
    const abs = path.join(srcDir, rel);
    const name = `${topLevel}/${rel}`;
    const st = await lstat(abs);
    if (st.isDirectory()) yield tarHeader({ path: `${name}/`, type: 'Directory', mode: 0o755 });
    else if (st.isSymbolicLink()) yield tarHeader({ path: name, type: 'SymbolicLink', linkpath: await readlink(abs), mode: 0o777 });
    else if (st.isFile()) {
      yield tarHeader({ path: name, type: 'File', size: st.size, mode: st.mode & 0o111 ? 0o755 : 0o644 });
      let read = 0;
      // `end` caps the read at the size in the header, so a growing file cannot corrupt the archive.
      const body = st.size > 0 ? createReadStream(abs, { start: 0, end: st.size - 1 }) : [];
      for await (const chunk of body) {
        read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (read !== st.size) throw new ReleaseError(`${abs} changed while it was being packed`);
      if (st.size % 512) yield Buffer.alloc(512 - (st.size % 512));
    } else throw new ReleaseError(`cannot pack ${abs}: not a file, directory or symlink`);
  }
  yield Buffer.alloc(1024); // end-of-archive: two zero blocks
}

async function* sortedTree(root: string, rel: string): AsyncGenerator<string> {
  const names = (await readdir(path.join(root, rel))).sort();
  for (const name of names) {
    const child = rel ? `${rel}/${name}` : name;
    yield child;
    if ((await lstat(path.join(root, child))).isDirectory()) yield* sortedTree(root, child);
  }
}

/** The header block(s) of one entry: owner 0:0, no owner names, fixed mtime; pax only when needed. */
export function tarHeader(data: HeaderData): Buffer {
  const block = Buffer.alloc(512);
  const needPax = new (tar().Header)({ size: 0, ...data, uid: 0, gid: 0, mtime: FIXED_MTIME, uname: '', gname: '' }).encode(block);
  if (!needPax) return block;
  // Long or non-ASCII names go in a pax header; only the fields that did not fit, for determinism.
  return Buffer.concat([new (tar().Pax)({ path: data.path, linkpath: data.linkpath }).encode(), block]);
}
