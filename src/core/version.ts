import semver from 'semver';
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

export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}

export function isPrerelease(version: string): boolean {
  return semver.prerelease(version) !== null;
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
