/**
 * The tarball source: a folder or URL of smolotchi-<ver>.tar.gz with its .sha256 (and signature).
 * Never extracts before the private copy matches its checksum, nor shows a URL's credentials.
 */

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { copyAndHash, extractTarFile, streamToFileAndHash } from '../../../adapters/tar.js';
import { DEFAULT_LIMITS, type ExtractLimits } from '../../../adapters/archive-policy.js';
import { IntegrityError, NotFoundError, ReleaseError, UsageError } from '../../errors.js';
import { checkTreeAgainstManifest, verifySignedArchive, type SiblingReader } from '../../trust/signed-artifact.js';
import type { TrustStore } from '../../trust/trust.js';
import { compareVersions, parseVersion, tryParseVersion } from '../../version.js';
import type { FetchedRelease } from './types.js';

/**
 * The tarball source: a directory (or an http(s) URL of one) holding `smolotchi-<ver>.tar.gz` and
 * `smolotchi-<ver>.tar.gz.sha256`. The archive is copied to a private file while hashed, compared
 * with its checksum, and only then extracted (with the archive policy) into staging.
 */

const ARCHIVE_NAME = /^smolotchi-(.+)\.tar\.gz$/;
const MAX_CHECKSUM_BYTES = 4096;
const ARCHIVE_TIMEOUT_MS = 10 * 60_000;
const CHECKSUM_TIMEOUT_MS = 60_000;
// A compressed archive is never larger than what we would agree to extract from it.
const MAX_ARCHIVE_BYTES = DEFAULT_LIMITS.maxTotalBytes;

export interface FetchTarballOptions {
  source: string;
  version: string;
  stagingDir: string;
  workDir: string;
  /** Extraction limits (tests, small devices); DEFAULT_LIMITS otherwise. */
  limits?: Partial<ExtractLimits>;
  /** The device's keys: when they require it, the archive's signed manifest is verified too. */
  trust?: TrustStore | null;
}

export interface FetchTarballFileOptions {
  file: string;
  stagingDir: string;
  workDir: string;
  limits?: Partial<ExtractLimits>;
  trust?: TrustStore | null;
}

const isUrl = (source: string): boolean => /^https?:\/\//i.test(source);
const archiveName = (version: string): string => `smolotchi-${version}.tar.gz`;

/** The canonical version in an archive file name, or null (a `v` prefix or junk is not ours). */
export function versionFromArchiveName(name: string): string | null {
  const m = ARCHIVE_NAME.exec(name);
  if (!m) return null;
  const version = tryParseVersion(m[1] as string);
  return version === m[1] ? version : null;
}

/** Versions with an archive in a directory source, ascending; unrelated files are ignored. */
export async function listTarballVersions(sourceDir: string): Promise<string[]> {
  if (isUrl(sourceDir)) return listUrlVersions(sourceDir);
  let names: string[];
  try {
    const entries = await readdir(sourceDir, { withFileTypes: true });
    names = entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name);
  } catch {
    throw new NotFoundError(`tarball source ${sourceDir} is not a readable directory`);
  }
  const versions = new Set(names.map(versionFromArchiveName).filter((v): v is string => v !== null));
  return [...versions].sort(compareVersions);
}

const MAX_LISTING_BYTES = 4 * 1024 * 1024;
// An archive name as it appears in a listing: in an href, a table cell, or a line of a plain index.
const LISTED_ARCHIVE = /(?<![A-Za-z0-9_.+-])smolotchi-([0-9A-Za-z.+-]+?)\.tar\.gz(?![A-Za-z0-9_.])/g;

/**
 * `latest` from a folder on a web server: the folder URL itself is read as a listing (nginx
 * `autoindex`, Apache, `python3 -m http.server`, or any index.html / plain list naming the files)
 * and every smolotchi-<ver>.tar.gz named in it counts. Names are only ever strict versions.
 */
async function listUrlVersions(source: string): Promise<string[]> {
  const base = baseUrl(source);
  if (base.username || base.password) throw new UsageError(`credentials in a source URL are not supported: ${shown(base)}`);
  const res = await get(base, CHECKSUM_TIMEOUT_MS);
  const noListing = () =>
    new NotFoundError(
      `${shown(base)} lists no smolotchi-<version>.tar.gz`,
      'serve the folder with a listing (nginx `autoindex on;`, `python3 -m http.server`) or an index.html linking the archives, or name the version',
    );
  if (res.status === 404) throw noListing();
  const tooLarge = () => new IntegrityError(`the listing at ${shown(base)} is larger than ${MAX_LISTING_BYTES} bytes`);
  const body = (await readBody(res, 'listing', (b) => readCapped(b, MAX_LISTING_BYTES, tooLarge))).toString('utf8');
  const versions = new Set<string>();
  for (const m of body.matchAll(LISTED_ARCHIVE)) {
    const v = versionFromArchiveName(`smolotchi-${m[1]}.tar.gz`);
    if (v !== null) versions.add(v);
  }
  if (versions.size === 0) throw noListing();
  return [...versions].sort(compareVersions);
}

/** Is the version's archive there? Asked without downloading it (dry runs). */
export async function tarballAvailable(source: string, version: string): Promise<boolean> {
  const name = archiveName(parseVersion(version));
  if (!isUrl(source)) return isFile(path.join(source, name));
  const base = baseUrl(source);
  if (base.username || base.password) throw new UsageError(`credentials in a source URL are not supported: ${shown(base)}`);
  const res = await get(new URL(name, base), CHECKSUM_TIMEOUT_MS, 'HEAD');
  return res.status !== 404;
}

export async function fetchTarball(opts: FetchTarballOptions): Promise<FetchedRelease> {
  // Validated again here: only a strict semver string ever becomes part of a file name or URL.
  const version = parseVersion(opts.version);
  const name = archiveName(version);
  const fetchInto = isUrl(opts.source)
    ? (priv: string) => fromUrl(opts.source, name, priv)
    : (priv: string) => fromDirectory(opts.source, name, priv);
  return verifyAndExtract(version, name, opts, fetchInto, opts.source, (file, max) => readSibling(opts.source, file, max));
}

/** `install ./path/smolotchi-<ver>.tar.gz`: the version comes from the name, the .sha256 must sit beside it. */
export async function fetchTarballFile(opts: FetchTarballFileOptions): Promise<FetchedRelease> {
  const name = path.basename(opts.file);
  const version = versionFromArchiveName(name);
  if (!version) throw new UsageError(`archive name must be smolotchi-<version>.tar.gz: ${JSON.stringify(name)}`);
  const dir = path.dirname(opts.file);
  return verifyAndExtract(version, name, opts, (priv) => fromDirectory(dir, name, priv), opts.file, (file, max) => readSibling(dir, file, max));
}

interface Fetched {
  actual: string;
  expected: string;
}

async function verifyAndExtract(
  version: string,
  name: string,
  opts: { stagingDir: string; workDir: string; limits?: Partial<ExtractLimits>; trust?: TrustStore | null },
  fetchInto: (privateFile: string) => Promise<Fetched>,
  source: string,
  sibling: SiblingReader,
): Promise<FetchedRelease> {
  await mkdir(opts.workDir, { recursive: true, mode: 0o700 });
  const privateFile = path.join(opts.workDir, `.${name}.${randomBytes(6).toString('hex')}`);
  try {
    const { actual, expected } = await fetchInto(privateFile);
    // Nothing is extracted from an archive whose bytes are not the ones the checksum names.
    if (actual !== expected) {
      throw new IntegrityError(
        `checksum mismatch for ${name}: expected ${expected.slice(0, 16)}…, got ${actual.slice(0, 16)}…`,
        'the archive or its .sha256 was altered or damaged; nothing was extracted',
      );
    }
    // Signed releases: verified against the private copy, so a source file changed afterwards cannot matter.
    const facts = { version, sha256: actual, size: (await stat(privateFile)).size };
    const signed = opts.trust?.requireSignatures ? await verifySignedArchive(opts.trust, sibling, facts) : undefined;
    const result = await extractTarFile(privateFile, opts.stagingDir, { gzip: true, topLevel: `smolotchi-${version}`, limits: opts.limits });
    if (signed) await checkTreeAgainstManifest(opts.stagingDir, signed.manifest);
    return { version, kind: 'tarball', source, sha256: actual, bytes: result.bytes, signed };
  } finally {
    await rm(privateFile, { force: true });
  }
}

async function fromDirectory(dir: string, name: string, privateFile: string): Promise<Fetched> {
  const archive = path.join(dir, name);
  if (!(await isFile(archive))) throw new NotFoundError(`no ${name} in ${dir}`);
  const checksumFile = `${archive}.sha256`;
  // Fail closed: an archive without its checksum is never installed.
  if (!(await isFile(checksumFile))) throw new IntegrityError(`missing checksum ${name}.sha256 in ${dir}`, 'refusing to install an unverified archive');
  const expected = parseChecksum(await readBounded(createReadStream(checksumFile), name), name);
  return { actual: await copyAndHash(archive, privateFile), expected };
}

/** A small file beside the archive (manifest, signature): size-checked before it is read; null when absent. */
async function readSibling(source: string, file: string, maxBytes: number): Promise<Buffer | null> {
  const tooLarge = () => new IntegrityError(`${file} is larger than ${maxBytes} bytes`);
  if (!isUrl(source)) {
    const p = path.join(source, file);
    if (!(await isFile(p))) return null;
    if ((await stat(p)).size > maxBytes) throw tooLarge();
    return readCapped(createReadStream(p), maxBytes, tooLarge);
  }
  const res = await get(new URL(file, baseUrl(source)), CHECKSUM_TIMEOUT_MS);
  if (res.status === 404) return null;
  if (Number(res.headers.get('content-length') ?? '0') > maxBytes) {
    await res.body?.cancel();
    throw tooLarge();
  }
  return readBody(res, file, (body) => readCapped(body, maxBytes, tooLarge));
}

const baseUrl = (source: string): URL => new URL(source.endsWith('/') ? source : `${source}/`);

async function fromUrl(source: string, name: string, privateFile: string): Promise<Fetched> {
  const base = baseUrl(source);
  // fetch would echo a user:password URL in its own error text; refuse before any request is made.
  if (base.username || base.password) throw new UsageError(`credentials in a source URL are not supported: ${shown(base)}`);
  const archiveRes = await get(new URL(name, base), ARCHIVE_TIMEOUT_MS);
  if (archiveRes.status === 404) throw new NotFoundError(`no ${name} at ${shown(base)}`);
  const length = Number(archiveRes.headers.get('content-length') ?? '0');
  if (length > MAX_ARCHIVE_BYTES) throw new IntegrityError(`${name} is larger than ${MAX_ARCHIVE_BYTES} bytes`);
  const actual = await readBody(archiveRes, name, (body) => streamToFileAndHash(body, privateFile, MAX_ARCHIVE_BYTES));
  const sumRes = await get(new URL(`${name}.sha256`, base), CHECKSUM_TIMEOUT_MS);
  // Fail closed: an archive without its checksum is never installed.
  if (sumRes.status === 404) throw new IntegrityError(`missing checksum ${name}.sha256 at ${shown(base)}`, 'refusing to install an unverified archive');
  const expected = parseChecksum(await readBody(sumRes, name, (body) => readBounded(body, name)), name);
  return { actual, expected };
}

/**
 * sha256sum output for exactly this file (`<hex>  <name>` or `<hex> *<name>`), or a bare `<hex>`;
 * one line. Anything else is refused rather than guessed at.
 */
export function parseChecksum(text: string, name: string): string {
  const line = text.replace(/\r?\n$/, '');
  const m = /^([0-9a-fA-F]{64})(?: [ *](.+))?$/.exec(line);
  if (!m || line.includes('\n')) throw new IntegrityError(`${name}.sha256 is not a sha256sum line for ${name}`);
  if (m[2] !== undefined && m[2] !== name) throw new IntegrityError(`${name}.sha256 names another file: ${JSON.stringify(m[2])}`);
  return (m[1] as string).toLowerCase();
}

async function get(url: URL, timeoutMs: number, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { method, signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (err) {
    throw new ReleaseError(`cannot download ${shown(url)}: ${reason(err)}`);
  }
  if (res.status !== 404 && !res.ok) {
    await res.body?.cancel();
    throw new ReleaseError(`download of ${shown(url)} failed: HTTP ${res.status}`);
  }
  if (res.status === 404) await res.body?.cancel();
  return res;
}

async function readBody<T>(res: Response, name: string, consume: (body: AsyncIterable<Uint8Array>) => Promise<T>): Promise<T> {
  if (!res.body) throw new ReleaseError(`empty response for ${name}`);
  try {
    return await consume(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>));
  } catch (err) {
    if (err instanceof ReleaseError) throw err;
    throw new ReleaseError(`download of ${name} failed: ${reason(err)}`);
  }
}

async function readBounded(input: AsyncIterable<Uint8Array>, name: string): Promise<string> {
  const tooLarge = () => new IntegrityError(`${name}.sha256 is larger than ${MAX_CHECKSUM_BYTES} bytes`);
  return (await readCapped(input, MAX_CHECKSUM_BYTES, tooLarge)).toString('utf8');
}

/** Read a stream into memory, stopping at the first byte past maxBytes. */
async function readCapped(input: AsyncIterable<Uint8Array>, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    total += chunk.length;
    if (total > maxBytes) throw tooLarge();
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** URLs may carry credentials: they never go into messages or logs. */
function shown(url: URL): string {
  const copy = new URL(url);
  copy.username = '';
  copy.password = '';
  return copy.toString();
}

function reason(err: unknown): string {
  if (err instanceof Error) return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
  return String(err);
}
