/**
 * The signed manifest of a release artifact: strict parsing and encoding of its entries and units.
 * Never accepts anything unexpected: every oddity is an IntegrityError.
 */

import { canonicalBytes, parseCanonical } from './canonical-json.js';
import { IntegrityError } from '../errors.js';
import { byPathOrder, type TreeEntry } from './tree-files.js';
import { tryParseVersion } from '../version.js';

/**
 * The signed description of one release artifact: which version and commit it is, the archive's
 * hash, and every entry of its tree. Parsing is strict: anything unexpected is an IntegrityError.
 */
export interface Manifest {
  schemaVersion: 1;
  name: 'smolotchi';
  version: string;
  commit: string;
  archive: { sha256: string; size: number };
  files: TreeEntry[];
  /** sha256 of every file under the release's packaging/systemd/, keyed by its path below it. */
  units: Record<string, string>;
  minToolVersion: string;
}

// Sized for a release with vendored wheels (~150 bytes per entry); checked before reading.
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
export const MAX_MANIFEST_ENTRIES = 100_000;
/** The first tool version that understands manifest schema 1. */
export const MANIFEST_MIN_TOOL_VERSION = '0.1.0';
export const UNITS_PREFIX = 'packaging/systemd/';
const MAX_PATH_BYTES = 4096;
const MAX_DEPTH = 64;
const HEX64 = /^[0-9a-f]{64}$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
// C0, DEL and C1 controls forge log lines; a backslash is a separator to some tools.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\\]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

type Fail = (why: string) => IntegrityError;
const failFor = (what: string): Fail => (why) => new IntegrityError(`${what} refused: ${why}`);

export function encodeManifest(m: Manifest): Buffer {
  return canonicalBytes({ ...m, files: [...m.files].sort(byPathOrder) });
}

/** Parse manifest bytes (already size-checked by the reader): never anything but IntegrityError. */
export function parseManifest(bytes: Uint8Array, what = 'manifest'): Manifest {
  const fail = failFor(what);
  if (bytes.length > MAX_MANIFEST_BYTES) throw fail(`larger than ${MAX_MANIFEST_BYTES} bytes`);
  const v = parseCanonical(bytes, fail);
  const o = objectWith(v, ['archive', 'commit', 'files', 'minToolVersion', 'name', 'schemaVersion', 'units', 'version'], 'manifest', fail);
  if (o.schemaVersion !== 1) throw fail(`unsupported schemaVersion ${JSON.stringify(o.schemaVersion)}`);
  if (o.name !== 'smolotchi') throw fail(`names ${JSON.stringify(o.name)}, not smolotchi`);
  const version = canonicalVersion(o.version, 'version', fail);
  const minToolVersion = canonicalVersion(o.minToolVersion, 'minToolVersion', fail);
  if (typeof o.commit !== 'string' || !COMMIT.test(o.commit)) throw fail('commit is not a full lowercase object id');
  const a = objectWith(o.archive, ['sha256', 'size'], 'archive', fail);
  if (typeof a.sha256 !== 'string' || !HEX64.test(a.sha256)) throw fail('archive.sha256 is not 64 lowercase hex digits');
  const size = count(a.size, 'archive.size', fail);
  const files = parseEntries(o.files, fail);
  const units = parseUnits(o.units, files, fail);
  return { schemaVersion: 1, name: 'smolotchi', version, commit: o.commit, archive: { sha256: a.sha256, size }, files, units, minToolVersion };
}

/**
 * A sorted, duplicate-free list of tree entries with safe relative paths, each under a directory
 * listed before it (so nothing is placed under a file or through a symlink).
 */
export function parseEntries(value: unknown, fail: Fail): TreeEntry[] {
  if (!Array.isArray(value)) throw fail('files is not a list');
  if (value.length > MAX_MANIFEST_ENTRIES) throw fail(`more than ${MAX_MANIFEST_ENTRIES} entries`);
  const dirs = new Set<string>();
  const out: TreeEntry[] = [];
  let previous: string | null = null;
  for (const raw of value) {
    const type = (raw as { type?: unknown } | null)?.type;
    const keys = type === 'file' ? ['mode', 'path', 'sha256', 'size', 'type'] : type === 'symlink' ? ['path', 'target', 'type'] : ['path', 'type'];
    if (type !== 'file' && type !== 'dir' && type !== 'symlink') throw fail(`entry type ${JSON.stringify(type)} is not file, dir or symlink`);
    const e = objectWith(raw, keys, 'entry', fail);
    const p = safePath(e.path, 'path', fail);
    // Strictly ascending: one order, no path twice.
    if (previous !== null && !(previous < p)) throw fail(`entries not sorted or duplicated at ${JSON.stringify(p)}`);
    previous = p;
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : null;
    if (parent !== null && !dirs.has(parent)) throw fail(`${JSON.stringify(p)} is not under a listed directory`);
    if (type === 'dir') {
      dirs.add(p);
      out.push({ path: p, type });
    } else if (type === 'symlink') {
      out.push({ path: p, type, target: symlinkTarget(e.target, p, fail) });
    } else {
      if (typeof e.sha256 !== 'string' || !HEX64.test(e.sha256)) throw fail(`${JSON.stringify(p)}: sha256 is not 64 lowercase hex digits`);
      // The extractor only ever writes 0644 and 0755: any other mode cannot match a real tree.
      if (e.mode !== 0o644 && e.mode !== 0o755) throw fail(`${JSON.stringify(p)}: mode ${JSON.stringify(e.mode)} is not 420 (0644) or 493 (0755)`);
      out.push({ path: p, type, sha256: e.sha256, size: count(e.size, `${p}: size`, fail), mode: e.mode });
    }
  }
  return out;
}

/** The units map must say exactly what the file list says about packaging/systemd/. */
function parseUnits(value: unknown, files: TreeEntry[], fail: Fail): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('units is not an object');
  const units = value as Record<string, unknown>;
  const expected = new Map<string, string>();
  for (const f of files) if (f.type === 'file' && f.path.startsWith(UNITS_PREFIX)) expected.set(f.path.slice(UNITS_PREFIX.length), f.sha256);
  const out: Record<string, string> = {};
  for (const key of Object.keys(units)) {
    const rel = safePath(key, 'unit path', fail);
    if (expected.get(rel) !== units[key]) throw fail(`units[${JSON.stringify(rel)}] does not match the file list`);
    out[rel] = units[key] as string;
  }
  if (Object.keys(out).length !== expected.size) throw fail('units does not list every file under packaging/systemd/');
  return out;
}

/** The plain object with exactly these keys, or a refusal naming what is missing or extra. */
function objectWith(v: unknown, keys: string[], what: string, fail: Fail): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(`${what} is not an object`);
  const have = Object.keys(v);
  const extra = have.filter((k) => !keys.includes(k));
  const missing = keys.filter((k) => !have.includes(k));
  if (extra.length || missing.length) {
    throw fail(`${what} has ${extra.length ? `unknown field(s) ${JSON.stringify(extra.slice(0, 3))}` : `no ${missing.slice(0, 3).join(', ')}`}`);
  }
  return v as Record<string, unknown>;
}

function count(v: unknown, what: string, fail: Fail): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw fail(`${what} is not a whole number`);
  return v;
}

function canonicalVersion(v: unknown, what: string, fail: Fail): string {
  if (typeof v !== 'string' || tryParseVersion(v) !== v) throw fail(`${what} ${JSON.stringify(v)?.slice(0, 80)} is not a canonical version`);
  return v;
}

/** A relative path in its one canonical spelling: no `/` at either end, no empty, `.` or `..` segment. */
export function safePath(v: unknown, what: string, fail: Fail): string {
  if (typeof v !== 'string' || v.length === 0) throw fail(`${what} is empty or not a string`);
  if (Buffer.byteLength(v) > MAX_PATH_BYTES) throw fail(`${what} longer than ${MAX_PATH_BYTES} bytes`);
  const shown = JSON.stringify(v).slice(0, 120);
  if (UNSAFE_CHARS.test(v) || LONE_SURROGATE.test(v)) throw fail(`${what} ${shown} has a control character, backslash or broken UTF-16`);
  if (v.startsWith('/')) throw fail(`${what} ${shown} is absolute`);
  const segments = v.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) throw fail(`${what} ${shown} has an empty, '.' or '..' segment`);
  if (segments.length > MAX_DEPTH) throw fail(`${what} ${shown} is deeper than ${MAX_DEPTH} levels`);
  return v;
}

/** Relative, leading `..` only, never climbing above the release root (the archive policy's rule). */
function symlinkTarget(v: unknown, linkPath: string, fail: Fail): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > MAX_PATH_BYTES) throw fail(`symlink ${JSON.stringify(linkPath)}: bad target`);
  if (UNSAFE_CHARS.test(v) || LONE_SURROGATE.test(v) || v.startsWith('/')) throw fail(`symlink ${JSON.stringify(linkPath)}: unsafe target ${JSON.stringify(v).slice(0, 120)}`);
  const parts = v.split('/');
  if (v !== '.' && parts.some((s) => s === '' || s === '.')) throw fail(`symlink ${JSON.stringify(linkPath)}: target ${JSON.stringify(v)} is not normalised`);
  const named = parts.findIndex((s) => s !== '..');
  const climbs = named === -1 ? parts.length : named;
  if (parts.slice(climbs).includes('..')) throw fail(`symlink ${JSON.stringify(linkPath)}: target ${JSON.stringify(v)} has '..' after a name`);
  if (climbs > linkPath.split('/').length - 1) throw fail(`symlink ${JSON.stringify(linkPath)}: target climbs out of the release`);
  return v;
}
