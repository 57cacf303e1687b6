/**
 * Removes the `.lock` files a killed git left in the mirror, so later fetches work again.
 * Never removes one while any live process still works in the mirror.
 */

import { readdirSync, type Dirent } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * A git killed while updating refs leaves `<ref>.lock` files behind, and every later fetch that
 * touches that ref fails ("Unable to create ... .lock: File exists") until someone removes them
 * by hand. Called by recovery under the release lock: when no live process is using the mirror,
 * every lock file in it is stale and goes.
 */

/** Is any live process a git (or anything) working in this mirror? (/proc cmdlines name it.) */
async function mirrorInUse(mirrorDir: string): Promise<boolean> {
  const needle = path.resolve(mirrorDir);
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) return true;
  }
  return false;
}

/**
 * The search is synchronous: recovery runs it before every mutating command, and in the usual case
 * (a few folders, no lock file) the listings cost less than their thread-pool round trips.
 */
function entriesOf(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

function lockFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of entriesOf(dir)) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...lockFiles(full));
    else if (entry.name.endsWith('.lock')) out.push(full);
  }
  return out;
}

/** Remove stale lock files (top level: packed-refs, config, HEAD, shallow...; refs/; logs/). Returns what went. */
export async function removeStaleGitLocks(mirrorDir: string): Promise<string[]> {
  const entries = entriesOf(mirrorDir);
  if (entries.length === 0) return [];
  const top = entries.filter((e) => e.name.endsWith('.lock')).map((e) => path.join(mirrorDir, e.name));
  const found = [...top, ...lockFiles(path.join(mirrorDir, 'refs')), ...lockFiles(path.join(mirrorDir, 'logs'))];
  if (found.length === 0 || (await mirrorInUse(mirrorDir))) return [];
  await Promise.all(found.map((f) => rm(f, { force: true })));
  return found.map((f) => path.relative(mirrorDir, f));
}
