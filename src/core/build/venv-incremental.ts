/**
 * What a cloned venv lacks for a release, and removing what it no longer needs, by RECORD.
 * Never writes through an inode the clone shares with its source release: removal only unlinks.
 */

import { lstat, readdir, readFile, realpath, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedDist } from '../../adapters/python.js';

/**
 * The difference between a cloned venv and what a release needs, and the root-side half of
 * applying it: removing the distributions the new set no longer has (or has in another version)
 * file by file, bounded by each one's RECORD. It runs before any folder of the clone is handed to
 * the service user, so nothing can move under it; a removal only unlinks, so an inode the clone
 * shares with its source release loses a link and never changes. pip then installs the rest.
 */

export interface InstalledDist {
  name: string;
  version: string;
  /** Absolute path of its `.dist-info` folder. */
  distInfo: string;
}

export interface VenvDiff {
  /** Pins `name==version` pip installs (new and changed distributions). */
  install: string[];
  /** The same distributions as the new set names them (with the wheel the closure check chose, if any). */
  installing: ResolvedDist[];
  /** Installed distributions to remove first (gone from the set, or changed). */
  remove: InstalledDist[];
  added: string[];
  changed: string[];
  removed: string[];
}

/** PEP 503: names compare lower-cased with runs of `-_.` as one `-`. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function header(metadata: string, field: string): string | null {
  for (const line of metadata.split('\n')) {
    if (line.trim() === '') break; // the body (long description) starts after the first blank line
    const m = /^([A-Za-z-]+):\s*(.*?)\s*$/.exec(line);
    if (m && m[1]!.toLowerCase() === field) return m[2]!;
  }
  return null;
}

/** A folder reached without any symlink on the way (`dir` itself given as a real path). */
async function isRealDir(dir: string): Promise<boolean> {
  return (await realpath(dir).catch(() => null)) === dir && (await lstat(dir)).isDirectory();
}

/** The distributions of a site-packages folder, from their dist-info METADATA read as plain text. */
export async function installedDists(sitePackages: string): Promise<Map<string, InstalledDist>> {
  const out = new Map<string, InstalledDist>();
  const entries = await readdir(sitePackages, { withFileTypes: true });
  for (const e of entries) {
    // A legacy install (egg-info, egg-link) has no RECORD to bound its removal: build afresh instead.
    if (/\.egg(-info|-link)?$/.test(e.name)) throw new Error(`${e.name} is a legacy install`);
    if (!e.isDirectory() || !e.name.endsWith('.dist-info')) continue;
    const distInfo = path.join(sitePackages, e.name);
    const file = path.join(distInfo, 'METADATA');
    const st = await lstat(file).catch(() => null);
    if (!st?.isFile()) throw new Error(`${e.name} has no METADATA`);
    const text = await readFile(file, 'utf8');
    const [name, version] = [header(text, 'name'), header(text, 'version')];
    if (!name || !version) throw new Error(`${e.name}/METADATA names no project or version`);
    const key = canonicalName(name);
    if (out.has(key)) throw new Error(`${name} is installed twice`);
    out.set(key, { name, version, distInfo });
  }
  return out;
}

/** What to remove and install so that `installed` becomes `wanted`; null when pins cannot express it. */
export function planDiff(installed: Map<string, InstalledDist>, wanted: ResolvedDist[]): VenvDiff | null {
  const diff: VenvDiff = { install: [], installing: [], remove: [], added: [], changed: [], removed: [] };
  const wantedNames = new Set<string>();
  for (const w of wanted) {
    // A URL or path requirement installs what it names, not a name==version from wheels/ or the index.
    if (w.direct) return null;
    const key = canonicalName(w.name);
    wantedNames.add(key);
    const have = installed.get(key);
    if (have && have.version === w.version) continue;
    diff.install.push(`${w.name}==${w.version}`);
    diff.installing.push(w);
    if (have) {
      diff.remove.push(have);
      diff.changed.push(`${w.name} ${have.version} -> ${w.version}`);
    } else diff.added.push(`${w.name} ${w.version}`);
  }
  for (const [key, have] of installed) {
    if (wantedNames.has(key)) continue;
    diff.remove.push(have);
    diff.removed.push(`${have.name} ${have.version}`);
  }
  return diff;
}

/** RECORD's first column: a CSV field, quoted when it holds a comma or a quote. */
function recordPaths(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('"')) {
      const m = /^"((?:[^"]|"")*)"/.exec(line);
      if (!m) throw new Error('RECORD has an unterminated quoted path');
      out.push(m[1]!.replace(/""/g, '"'));
    } else out.push(line.split(',')[0]!);
  }
  return out;
}

/**
 * Remove one distribution the way `pip uninstall` does, from its RECORD: each listed file (and the
 * byte-code of each listed .py), then the folders that became empty. Every path must resolve inside
 * the venv with no symlink among its folders (a planted link must not aim root's unlink elsewhere);
 * anything else refuses, and the caller builds the venv afresh.
 */
export async function removeDist(venvDir: string, sitePackages: string, dist: InstalledDist): Promise<number> {
  const record = path.join(dist.distInfo, 'RECORD');
  if (!(await lstat(record).catch(() => null))?.isFile()) throw new Error(`${path.basename(dist.distInfo)} has no RECORD`);
  const files = recordPaths(await readFile(record, 'utf8'));
  const touched = new Set<string>([dist.distInfo]);
  let removed = 0;
  const unlinkFile = async (file: string): Promise<void> => {
    const st = await lstat(file).catch(() => null);
    if (st === null) return; // already gone, as pip tolerates
    if (st.isDirectory()) throw new Error(`RECORD of ${dist.name} lists a folder (${path.relative(venvDir, file)})`);
    await unlink(file);
    removed++;
  };
  for (const rel of files) {
    const file = path.resolve(sitePackages, rel);
    if (!file.startsWith(venvDir + path.sep)) throw new Error(`RECORD of ${dist.name} names ${rel}, outside the venv`);
    const dir = path.dirname(file);
    if (!(await isRealDir(dir))) {
      if (await lstat(dir).catch(() => null)) throw new Error(`RECORD of ${dist.name} reaches ${rel} through a link`);
      continue; // its folder is gone: nothing to remove
    }
    await unlinkFile(file);
    touched.add(dir);
    if (file.endsWith('.py')) {
      const cache = path.join(dir, '__pycache__');
      if (!(await isRealDir(cache))) continue;
      const stem = path.basename(file, '.py') + '.';
      for (const name of await readdir(cache)) if (name.startsWith(stem) && name.endsWith('.pyc') && name.slice(stem.length).split('.').length <= 3) await unlinkFile(path.join(cache, name));
      touched.add(cache);
    }
  }
  // Deepest first, and never above site-packages or the venv's own folders.
  const stop = new Set([venvDir, sitePackages, path.join(venvDir, 'bin'), path.join(venvDir, 'lib'), path.dirname(sitePackages)]);
  const candidates = new Set<string>();
  for (const dir of touched) for (let d = dir; d.startsWith(venvDir + path.sep) && !stop.has(d); d = path.dirname(d)) candidates.add(d);
  for (const dir of [...candidates].sort((a, b) => b.length - a.length)) {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST' && err.code !== 'ENOENT') throw err;
    });
  }
  // Files its RECORD did not list (pip would leave them too) keep it half-installed: refuse.
  if (await lstat(dist.distInfo).catch(() => null)) throw new Error(`${path.basename(dist.distInfo)} holds files its RECORD does not list`);
  return removed;
}
