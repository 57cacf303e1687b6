/**
 * Strict semver: parse, precedence, and `latest` (the highest non-prerelease version).
 * Never lets anything but a canonical version reach a path, a URL or a git ref.
 */

import { UsageError } from './errors.js';

/** The official semver 2.0.0 grammar, anchored: nothing else may reach a path or a git argument. */
const STRICT_SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export const MAX_VERSION_LENGTH = 64;

/**
 * Parse a user-supplied version: strict semver with an optional leading `v`, at most 64
 * characters. Returns the canonical form (no `v`). Throws UsageError (exit 2) for anything else,
 * before the string can become a directory name or a git ref.
 */
export function parseVersion(input: string): string {
  if (typeof input !== 'string' || input.length === 0) throw new UsageError('version is empty');
  // Length first: a huge string is refused without running a regex over it.
  if (input.length > MAX_VERSION_LENGTH + 1) {
    throw new UsageError(`version is longer than ${MAX_VERSION_LENGTH} characters`);
  }
  const bare = input.startsWith('v') ? input.slice(1) : input;
  if (bare.length > MAX_VERSION_LENGTH) throw new UsageError(`version is longer than ${MAX_VERSION_LENGTH} characters`);
  if (!STRICT_SEMVER.test(bare)) {
    throw new UsageError(`not a version: ${JSON.stringify(input)} (expected X.Y.Z[-pre][+build], e.g. 1.4.2)`);
  }
  return bare;
}

/** Like parseVersion but returns null instead of throwing: for scanning tags and folder names. */
export function tryParseVersion(input: string): string | null {
  try {
    return parseVersion(input);
  } catch {
    return null;
  }
}

/**
 * Plain string order (UTF-16 code units), the same under every locale: semver's order for
 * prerelease words, and the order paths, timestamps and versions are listed in. localeCompare
 * would first build ICU's collator (~10 ms of a command).
 */
export const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Numeric identifiers of any length, compared without turning them into (inexact) numbers. */
function compareDigits(a: string, b: string): number {
  return a.length !== b.length ? Math.sign(a.length - b.length) : byCodeUnits(a, b);
}

const NUMERIC = /^\d+$/;

/** One prerelease identifier: numbers by value and below words; words in ASCII order. */
function compareIdentifier(a: string, b: string): number {
  const an = NUMERIC.test(a);
  const bn = NUMERIC.test(b);
  if (an && bn) return compareDigits(a, b);
  if (an !== bn) return an ? -1 : 1;
  return byCodeUnits(a, b);
}

function parts(version: string): { core: string[]; pre: string[] } {
  const m = STRICT_SEMVER.exec(version.startsWith('v') ? version.slice(1) : version);
  if (!m) throw new TypeError(`Invalid Version: ${version}`);
  return { core: [m[1]!, m[2]!, m[3]!], pre: m[4] === undefined ? [] : m[4].split('.') };
}

/**
 * Semver 2.0.0 precedence (build metadata ignored), -1/0/1, as `semver.compare` answers it.
 * Written out here: loading the `semver` package cost a rollback ~15 ms of regex building.
 */
export function compareVersions(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < 3; i++) {
    const c = compareDigits(x.core[i]!, y.core[i]!);
    if (c !== 0) return c;
  }
  // A release ranks above its prereleases.
  if (x.pre.length === 0 || y.pre.length === 0) return Math.sign(y.pre.length - x.pre.length);
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const c = compareIdentifier(x.pre[i]!, y.pre[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(x.pre.length - y.pre.length);
}

export function isPrerelease(version: string): boolean {
  return parts(version).pre.length > 0;
}

/** Highest non-prerelease version of a list, or null. */
export function latestStable(versions: Iterable<string>): string | null {
  let best: string | null = null;
  for (const v of versions) {
    if (isPrerelease(v)) continue;
    if (best === null || compareVersions(v, best) > 0) best = v;
  }
  return best;
}
