/**
 * The gate every archive entry passes before it is written: paths, links, types, modes, limits.
 * Never does I/O, and never lets an entry out of the tree or past a limit; one refusal ends it all.
 */

import { IntegrityError } from '../core/errors.js';

/** What the policy needs to know about one archive entry (a subset of node-tar's ReadEntry). */
export interface ArchiveEntryInfo {
  path: string;
  /** node-tar entry type: File, OldFile, ContiguousFile, Directory, SymbolicLink, Link, devices, FIFO, pax headers... */
  type: string;
  linkpath?: string;
  mode?: number;
  size?: number;
}

export interface ExtractLimits {
  maxEntries: number;
  maxTotalBytes: number;
  maxPathLength: number;
  maxDepth: number;
  maxFileBytes: number;
}

/** Generous for a Python app with vendored wheels; small enough that a bomb cannot fill an SD card. */
export const DEFAULT_LIMITS: Readonly<ExtractLimits> = Object.freeze({
  maxEntries: 100_000,
  maxTotalBytes: 2 * 1024 ** 3,
  maxPathLength: 4096,
  maxDepth: 64,
  maxFileBytes: 1024 ** 3,
});

export type EntryKind = 'file' | 'directory' | 'symlink' | 'hardlink';

/** An entry the policy let through, with everything the writer needs already normalised. */
export interface AcceptedEntry {
  /** Relative path inside the release (top-level folder stripped), segments joined by `/`. */
  path: string;
  kind: EntryKind;
  /** Mode to give it: 0o755 or 0o644 for files, 0o755 for directories (the archive's is never kept). */
  mode: number;
  size: number;
  /** symlink: the normalised relative target; hardlink: the release-relative path of the file. */
  linkTarget?: string;
}

const KINDS: Record<string, EntryKind> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'directory',
  SymbolicLink: 'symlink',
  Link: 'hardlink',
};

// node-tar folds these into the next entry's header; they never become files.
const META_TYPES = new Set([
  'ExtendedHeader',
  'GlobalExtendedHeader',
  'OldExtendedHeader',
  'NextFileHasLongPath',
  'NextFileHasLongLinkpath',
  'OldGnuLongPath',
]);

const NAMED_REFUSALS: Record<string, string> = {
  CharacterDevice: 'character device',
  BlockDevice: 'block device',
  FIFO: 'FIFO (named pipe)',
};

// C0 controls, DEL and C1 controls: they forge log lines and terminal output, and no release needs them.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidi controls and invisible characters: they make a name read as another (`evil\u202Egnp.py`
// shows as `evilyp.png`, `setup\u200B.py` as `setup.py`) in a listing, a review or `verify`.
const INVISIBLE = /[\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0]/;

type Seen = EntryKind | 'implied-directory';

/**
 * Stateful, pure (no I/O) gate for the entries of one archive, in archive order. Every entry goes
 * through `check` before anything is written; the first refusal throws IntegrityError (exit 4) with
 * a one-line reason naming the entry, and the caller abandons the whole extraction.
 */
export class ArchivePolicy {
  readonly limits: ExtractLimits;
  private readonly topLevel: string | null;
  private readonly seen = new Map<string, Seen>();
  private entries = 0;
  private declaredBytes = 0;

  constructor(opts: { topLevel: string | null; limits?: Partial<ExtractLimits> }) {
    this.topLevel = opts.topLevel;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
  }

  /** The release-relative path, or null for entries that write nothing (pax headers, the top folder). */
  check(entry: ArchiveEntryInfo): string | null {
    return this.checkEntry(entry)?.path ?? null;
  }

  checkEntry(entry: ArchiveEntryInfo): AcceptedEntry | null {
    const type = String(entry.type);
    if (META_TYPES.has(type)) return null; // e.g. the pax global header `git archive` writes
    const refuse = refuser(entry.path);
    if (++this.entries > this.limits.maxEntries) throw refuse(`more than ${this.limits.maxEntries} entries (too many entries)`);
    const kind = KINDS[type];
    // Devices and FIFOs would let a release talk to hardware or block a reader; unknown types mean
    // some tar dialect we do not understand, so we do not guess.
    if (!kind) throw refuse(NAMED_REFUSALS[type] ? `${NAMED_REFUSALS[type]} not allowed` : `unsupported entry type ${JSON.stringify(type)}`);
    checkModeBits(entry.mode, refuse);

    const segments = this.stripTop(splitArchivePath(entry.path, 'path', this.limits, refuse), 'entry', refuse);
    if (segments.length === 0) {
      // The archive's own top folder (or `./`): it is the staging dir, which already exists.
      if (kind === 'directory') return null;
      throw refuse('names the release root but is not a directory');
    }
    if (segments.length > this.limits.maxDepth) throw refuse(`path too deep (${segments.length} > ${this.limits.maxDepth} levels)`);
    const key = this.checkPlace(segments, kind, refuse);

    const size = this.checkSize(entry.size, kind, refuse);
    let linkTarget: string | undefined;
    if (kind === 'symlink') linkTarget = checkSymlinkTarget(entry.linkpath, segments, this.limits, refuse);
    if (kind === 'hardlink') linkTarget = this.checkHardlinkTarget(entry.linkpath, refuse);

    this.record(segments, key, kind);
    const mode = kind === 'file' ? ((entry.mode ?? 0) & 0o111 ? 0o755 : 0o644) : kind === 'directory' ? 0o755 : 0o777;
    return { path: key, kind, mode, size, linkTarget };
  }

  /** Remove the expected top-level folder; anything else at the top is another release's or junk. */
  private stripTop(segments: string[], what: string, refuse: Refuse): string[] {
    if (this.topLevel === null) return segments;
    if (segments[0] !== this.topLevel) {
      throw refuse(`${what} outside the top-level folder ${this.topLevel}/ (second top-level folder or another release)`);
    }
    return segments.slice(1);
  }

  /** Refuse duplicates, replacing a directory, and any path that goes through a link or a file. */
  private checkPlace(segments: string[], kind: EntryKind, refuse: Refuse): string {
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      const state = this.seen.get(parent);
      // A symlink earlier in the archive would redirect this write anywhere it points.
      if (state === 'symlink') throw refuse(`writes through the symlink ${JSON.stringify(parent)} earlier in the archive`);
      if (state && state !== 'directory' && state !== 'implied-directory') {
        throw refuse(`parent ${JSON.stringify(parent)} is a ${state}, not a directory`);
      }
    }
    const key = segments.join('/');
    const previous = this.seen.get(key);
    if (previous === 'implied-directory' && kind === 'directory') return key;
    // A second entry for a path would overwrite (or re-point) what the first one wrote.
    if (previous === 'implied-directory') throw refuse('duplicate entry: replaces a directory made by earlier entries');
    if (previous) throw refuse('duplicate entry (same path twice)');
    return key;
  }

  private checkSize(raw: number | undefined, kind: EntryKind, refuse: Refuse): number {
    const size = raw ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw refuse(`invalid size ${String(raw)}`);
    // Only regular files carry data: a body on anything else is smuggled bytes.
    if (kind !== 'file') {
      if (size > 0) throw refuse(`${kind} entry carries ${size} bytes of data`);
      return 0;
    }
    if (size > this.limits.maxFileBytes) throw refuse(`file too large (${size} > ${this.limits.maxFileBytes} bytes)`);
    this.declaredBytes += size;
    if (this.declaredBytes > this.limits.maxTotalBytes) {
      throw refuse(`total size over the limit of ${this.limits.maxTotalBytes} bytes (decompression bomb?)`);
    }
    return size;
  }

  /** Hard links share an inode: only a regular file this archive already wrote is a safe target. */
  private checkHardlinkTarget(linkpath: string | undefined, refuse: Refuse): string {
    const target = this.stripTop(splitArchivePath(linkpath ?? '', 'hardlink target', this.limits, refuse), 'hardlink target', refuse);
    const key = target.join('/');
    const state = key === '' ? 'directory' : this.seen.get(key);
    if (state === 'file') return key;
    if (state === undefined) throw refuse(`hardlink to ${JSON.stringify(key)}, which is missing (not earlier in the archive)`);
    throw refuse(`hardlink to a ${state === 'implied-directory' ? 'directory' : state} (${JSON.stringify(key)}); only regular files may be hardlinked`);
  }

  private record(segments: string[], key: string, kind: EntryKind): void {
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (!this.seen.has(parent)) this.seen.set(parent, 'implied-directory');
    }
    this.seen.set(key, kind);
  }
}

type Refuse = (why: string) => IntegrityError;

function refuser(rawPath: unknown): Refuse {
  // JSON.stringify escapes control characters, so the message stays on one line.
  const shown = JSON.stringify(String(rawPath ?? '')).slice(0, 160);
  return (why) => new IntegrityError(`archive entry ${shown} refused: ${why}`);
}

function checkModeBits(mode: number | undefined, refuse: Refuse): void {
  if (mode === undefined) return;
  // Special bits would make a file run as its owner/group or change how a directory behaves.
  if (mode & 0o4000) throw refuse('setuid bit set');
  if (mode & 0o2000) throw refuse('setgid bit set');
  if (mode & 0o1000) throw refuse('sticky bit set');
}

/**
 * Split an archive path into segments, refusing everything that could name a place outside the
 * tree or confuse a reader. `.` and empty segments (from `./x`, `a//b`, trailing `/`) are dropped.
 */
function splitArchivePath(raw: string, what: string, limits: Pick<ExtractLimits, 'maxPathLength'>, refuse: Refuse): string[] {
  if (typeof raw !== 'string' || raw.length === 0) throw refuse(`empty ${what}`);
  if (Buffer.byteLength(raw) > limits.maxPathLength) throw refuse(`${what} too long (over ${limits.maxPathLength} bytes)`);
  if (CONTROL.test(raw)) throw refuse(`control character in ${what}`);
  if (INVISIBLE.test(raw)) throw refuse(`bidi or zero-width character in ${what}`);
  // node-tar and Windows tools treat `\` as a separator: one name must not mean two paths.
  if (raw.includes('\\')) throw refuse(`backslash in ${what}`);
  if (raw.startsWith('/')) throw refuse(`absolute ${what}`);
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw refuse(`'..' in ${what}`);
  return segments;
}

/**
 * A symlink target must be relative, and its `..` steps must all come first and stay inside the
 * tree when resolved from the link's directory. `..` after a name is refused because that name may
 * itself be a symlink, and the kernel would then climb from wherever it points.
 */
function checkSymlinkTarget(linkpath: string | undefined, linkSegments: string[], limits: ExtractLimits, refuse: Refuse): string {
  const raw = linkpath ?? '';
  if (raw.length === 0) throw refuse('symlink without a target');
  if (Buffer.byteLength(raw) > limits.maxPathLength) throw refuse(`symlink target too long (over ${limits.maxPathLength} bytes)`);
  if (CONTROL.test(raw)) throw refuse('control character in symlink target');
  if (INVISIBLE.test(raw)) throw refuse('bidi or zero-width character in symlink target');
  if (raw.includes('\\')) throw refuse('backslash in symlink target');
  if (raw.startsWith('/')) throw refuse(`symlink to absolute path ${JSON.stringify(raw)}`);
  const parts = raw.split('/').filter((s) => s !== '' && s !== '.');
  let up = 0;
  let sawName = false;
  for (const part of parts) {
    if (part !== '..') sawName = true;
    else if (sawName) throw refuse(`symlink target ${JSON.stringify(raw)} has '..' after a name`);
    else up++;
  }
  if (up > linkSegments.length - 1) throw refuse(`symlink target ${JSON.stringify(raw)} climbs out of the release tree`);
  return parts.length === 0 ? '.' : parts.join('/');
}
