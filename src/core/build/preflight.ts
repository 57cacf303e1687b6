/**
 * Estimates the space an install needs and refuses it (exit 1) when the filesystem lacks it.
 * Never stages anything before the estimate passed: a refused install leaves the disk as it was.
 */

import { lstat, readdir, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { taggedTreeBytes } from '../../adapters/git-size.js';
import type { Context } from '../context.js';
import { ReleaseError } from '../errors.js';
import type { InstallRequest } from './fetch.js';
import { scanReleases, type ReleaseOnDisk } from '../state/releases.js';
import { readCurrent } from '../state/switch.js';
import { VENV_DIR } from './venv.js';
import { liveDataBytes } from '../data/data-snapshots.js';

/** What an install is expected to need on the filesystem of /opt/smolotchi, and what it has. */
export interface SpaceEstimate {
  filesystem: string;
  freeBytes: number;
  treeBytes: number;
  venvBytes: number;
  marginBytes: number;
  /** The app data snapshot taken before the switch, when it lands on the same filesystem. */
  snapshotBytes: number;
  neededBytes: number;
  /** How the tree and venv figures were arrived at, for the message. */
  basis: string[];
}

const MiB = 1024 * 1024;
/** No release or mirror to measure: a generous guess for the app tree and its venv (flask stack). */
export const DEFAULT_TREE_BYTES = 32 * MiB;
export const DEFAULT_VENV_BYTES = 128 * MiB;
// A gzip archive of source code extracts to about four times its size; the private copy counts too.
const GZIP_RATIO = 4;
// Units, stamp, history (WAL) and the filesystem's own overhead.
const MARGIN_FIXED = 8 * MiB;
const MARGIN_RATIO = 0.1;

export const formatBytes = (n: number): string => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);

/**
 * Blocks really allocated under `dir`, every inode once (a hard-linked venv clone shares its files).
 * A folder's entries side by side: a venv has thousands, each an lstat.
 */
export async function treeUsage(dir: string, skip: (name: string) => boolean = () => false, seen = new Set<string>()): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const sizes = await Promise.all(names.filter((name) => !skip(name)).map(async (name) => {
    const full = path.join(dir, name);
    const st = await lstat(full).catch(() => null);
    if (!st) return 0;
    // Checked and added in one synchronous step: two links to one inode are never both counted.
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return 0;
    seen.add(key);
    return st.blocks * 512 + (st.isDirectory() ? await treeUsage(full, () => false, seen) : 0);
  }));
  return sizes.reduce((a, b) => a + b, 0);
}

async function nearestExisting(p: string): Promise<string> {
  for (let dir = p; ; dir = path.dirname(dir)) {
    if (await stat(dir).then(() => true, () => false)) return dir;
    if (dir === path.dirname(dir)) return dir;
  }
}

export async function freeBytes(p: string): Promise<{ filesystem: string; free: number; size: number }> {
  const filesystem = await nearestExisting(p);
  const s = await statfs(filesystem);
  return { filesystem, free: s.bavail * s.bsize, size: s.blocks * s.bsize };
}

/** The release most like the next one: current, else the newest complete release on disk. */
async function referenceRelease(ctx: Context): Promise<ReleaseOnDisk | null> {
  const current = await readCurrent(ctx.layout);
  const complete = (await scanReleases(ctx.layout)).filter((r) => r.stamp);
  return complete.find((r) => r.version === current) ?? complete[0] ?? null;
}

/** A venv size read from a stamp, or null when it is not a whole positive number of bytes up to `max`. */
export function saneVenvBytes(value: unknown, max = Number.MAX_SAFE_INTEGER): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= max ? value : null;
}

/**
 * The reference's venv size: from its stamp (root's, written when the venv was made: no walk of
 * thousands of entries) when the figure there is sane, else measured. A stamp is trusted, but may be
 * old or hand-edited: a figure that is not a whole positive number, or is larger than the whole
 * filesystem, is ignored (the venv is measured) rather than obeyed.
 */
async function referenceVenvBytes(reference: ReleaseOnDisk, filesystemSize: number): Promise<[number, string]> {
  const recorded = saneVenvBytes(reference.stamp?.venvBytes, filesystemSize);
  const name = path.basename(reference.dir);
  if (recorded !== null) return [recorded, `venv of ${name}, from its stamp`];
  const measured = await treeUsage(path.join(reference.dir, VENV_DIR));
  return measured > 0 ? [measured, `venv of ${name}`] : [DEFAULT_VENV_BYTES, 'default venv size'];
}

/** `gitBytes`: the tagged tree's size from the mirror (null when unknown), asked of git by the caller. */
async function treeEstimate(req: InstallRequest, reference: ReleaseOnDisk | null, gitBytes: Promise<number | null>): Promise<[number, string]> {
  if (req.kind === 'git') {
    const bytes = await gitBytes;
    if (bytes !== null) return [bytes, 'tree size from git ls-tree'];
  } else if (!/^https?:\/\//i.test(req.source)) {
    const archive = req.kind === 'file' ? req.source : path.join(req.source, `smolotchi-${req.version}.tar.gz`);
    const size = await stat(archive).then((s) => s.size, () => null);
    if (size !== null) return [size * (1 + GZIP_RATIO), `archive size x ${1 + GZIP_RATIO}`];
  }
  if (reference) return [await treeUsage(reference.dir, (n) => n === VENV_DIR), `size of ${path.basename(reference.dir)}'s tree`];
  return [DEFAULT_TREE_BYTES, 'default tree size'];
}

/**
 * Estimate the space `req` needs: its tree (git ls-tree sizes, archive size x ratio, or the tree
 * of the release on disk most like it), a venv the size of that release's (a clone by hard links
 * needs far less; an estimate errs high), plus a margin.
 */
export async function estimateSpace(ctx: Context, req: InstallRequest): Promise<SpaceEstimate> {
  // The slowest question (a git process) is asked first; the reads below are answered meanwhile.
  const gitBytes = req.kind === 'git' ? taggedTreeBytes(ctx.layout.mirrorDir, req.version).catch(() => null) : Promise.resolve(null);
  const [reference, { filesystem, free, size }, data] = await Promise.all([referenceRelease(ctx), freeBytes(ctx.layout.optDir), snapshotSpace(ctx)]);
  const [[treeBytes, treeBasis], [venvBytes, venvBasis]] = await Promise.all([
    treeEstimate(req, reference, gitBytes),
    reference ? referenceVenvBytes(reference, size) : ([DEFAULT_VENV_BYTES, 'default venv size'] as [number, string]),
  ]);
  const marginBytes = Math.ceil((treeBytes + venvBytes) * MARGIN_RATIO) + MARGIN_FIXED;
  // On one filesystem the release and the snapshot share the free space; elsewhere checkSnapshotSpace answers.
  const snapshotBytes = (await sameFilesystem(data.filesystem, filesystem)) ? data.bytes : 0;
  const neededBytes = treeBytes + venvBytes + marginBytes + snapshotBytes;
  return { filesystem, freeBytes: free, treeBytes, venvBytes, marginBytes, snapshotBytes, neededBytes, basis: [treeBasis, venvBasis] };
}

/** What the app data snapshot before the switch needs, on the filesystem of the snapshots folder. */
async function snapshotSpace(ctx: Context): Promise<{ filesystem: string; free: number; bytes: number }> {
  const bytes = ctx.settings.dataSnapshots ? await liveDataBytes(ctx) : 0;
  const { filesystem, free } = await freeBytes(ctx.layout.snapshotsDir);
  return { filesystem, free, bytes };
}

const sameFilesystem = async (a: string, b: string) => (await stat(a)).dev === (await stat(b)).dev;

/** A snapshot on another filesystem than the releases is checked on its own. */
async function checkSnapshotSpace(ctx: Context, version: string, e: SpaceEstimate): Promise<void> {
  const data = await snapshotSpace(ctx);
  if ((await sameFilesystem(data.filesystem, e.filesystem)) || data.free >= data.bytes + MARGIN_FIXED) return;
  throw new ReleaseError(
    `not enough free space to snapshot the app's data before installing ${version}: about ${formatBytes(data.bytes + MARGIN_FIXED)} needed on ${data.filesystem}, ${formatBytes(data.free)} free`,
    undefined,
    'free some space (e.g. `smolotchi release prune --keep 2` also prunes old snapshots) and try again; nothing was changed',
  );
}

/** Refuse (exit 1) before anything is staged when the filesystem of /opt/smolotchi lacks the estimate. */
export async function preflight(ctx: Context, req: InstallRequest): Promise<SpaceEstimate> {
  const e = await estimateSpace(ctx, req);
  const snapshot = e.snapshotBytes > 0 ? `, app data snapshot ${formatBytes(e.snapshotBytes)}` : '';
  const detail = `release ${formatBytes(e.treeBytes)} (${e.basis[0]}), venv ${formatBytes(e.venvBytes)} (${e.basis[1]})${snapshot}, margin ${formatBytes(e.marginBytes)}`;
  ctx.log.debug(`preflight: ${formatBytes(e.freeBytes)} free on ${e.filesystem}; ${detail}`);
  if (e.freeBytes < e.neededBytes) {
    throw new ReleaseError(
      `not enough free space to install ${req.version}: about ${formatBytes(e.neededBytes)} needed on ${e.filesystem} (${detail}), ${formatBytes(e.freeBytes)} free`,
      undefined,
      'free some space (e.g. `smolotchi release prune --keep 2`) and try again; nothing was changed',
    );
  }
  await checkSnapshotSpace(ctx, req.version, e);
  return e;
}
