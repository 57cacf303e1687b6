/**
 * The release folders on disk, newest first, with their stamps (null when incomplete).
 * Never counts a folder whose name is not a canonical version as a release.
 */

import { readdirSync } from 'node:fs';
import { releaseDir, type Layout } from '../layout.js';
import { readStamp, type ReleaseStamp } from './stamp.js';
import { compareVersions, tryParseVersion } from '../version.js';

export interface ReleaseOnDisk {
  version: string;
  dir: string;
  stamp: ReleaseStamp | null;
}

/** Every release folder, newest version first; `stamp` is null for an incomplete one. */
export async function scanReleases(layout: Layout): Promise<ReleaseOnDisk[]> {
  let names: string[] = [];
  try {
    // A few names, listed without a thread-pool round trip (recovery and every target choice ask).
    names = readdirSync(layout.releasesDir);
  } catch {
    return [];
  }
  const out: ReleaseOnDisk[] = [];
  for (const name of names) {
    // A folder whose name is not a canonical version is not ours to target.
    const version = tryParseVersion(name);
    if (version === null || version !== name) continue;
    const dir = releaseDir(layout, version);
    out.push({ version, dir, stamp: await readStamp(dir, version) });
  }
  return out.sort((a, b) => compareVersions(b.version, a.version));
}

export async function completeRelease(layout: Layout, version: string): Promise<ReleaseStamp | null> {
  return readStamp(releaseDir(layout, version), version);
}
