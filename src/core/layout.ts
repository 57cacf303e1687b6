/**
 * Every path the tool touches, under a root prefix like DESTDIR, and the device paths units name.
 * Never puts the root prefix into a device path: units and symlinks say what the device sees.
 */

import path from 'node:path';

/**
 * Every path the tool touches, taken under a root prefix (like DESTDIR) so the whole tool runs
 * unprivileged in a temporary folder. `device*` paths are what units and symlinks say on the
 * device itself: they never carry the root prefix.
 */
export interface Layout {
  root: string;
  optDir: string;
  releasesDir: string;
  currentLink: string;
  stagingDir: string;
  trashDir: string;
  /** The app's state folder (the service user's, through StateDirectory=). */
  stateDir: string;
  /** The tool's own state: a root-only folder inside stateDir, holding the history. */
  toolStateDir: string;
  historyDb: string;
  /** Where older versions kept the history, in a folder the service user owns: untrusted input. */
  legacyHistoryDb: string;
  /** Bad marks again, beside the history: a rebuilt history must not forget them. */
  badMarksFile: string;
  /** Root-only: snapshots of the app's databases, one folder per deploy. */
  snapshotsDir: string;
  cacheDir: string;
  mirrorDir: string;
  /** The app's runtime folder and its locks (the service user's). */
  runDir: string;
  locksDir: string;
  /** The tool's own runtime folder (root-only) and its lock. */
  toolRunDir: string;
  lockFile: string;
  etcDir: string;
  envFile: string;
  keysDir: string;
  unitDir: string;
  tmpfilesFile: string;
}

export const DEVICE = {
  optDir: '/opt/smolotchi',
  currentLink: '/opt/smolotchi/current',
  stateDir: '/var/lib/smolotchi',
  runDir: '/run/smolotchi',
  envFile: '/etc/smolotchi/env',
  configFile: '/etc/smolotchi/config.toml',
} as const;

/** The PATH release code and the app get: system folders only, never root's or the caller's own. */
export const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function makeLayout(root = '/'): Layout {
  const abs = path.resolve(root);
  const under = (p: string) => path.join(abs, p);
  const optDir = under('/opt/smolotchi');
  const runDir = under('/run/smolotchi');
  const stateDir = under('/var/lib/smolotchi');
  const cacheDir = under('/var/cache/smolotchi');
  const etcDir = under('/etc/smolotchi');
  // The tool's state and lock live in root-only folders: the service user owns stateDir and
  // runDir, and root must never trust or write through what it can change.
  const toolStateDir = path.join(stateDir, 'release');
  const toolRunDir = under('/run/smolotchi-release');
  return {
    root: abs,
    optDir,
    releasesDir: path.join(optDir, 'releases'),
    currentLink: path.join(optDir, 'current'),
    // Staging and trash live beside releases/ so that rename(2) between them is atomic.
    stagingDir: path.join(optDir, '.staging'),
    trashDir: path.join(optDir, '.trash'),
    stateDir,
    toolStateDir,
    historyDb: path.join(toolStateDir, 'releases.db'),
    legacyHistoryDb: path.join(stateDir, 'releases.db'),
    badMarksFile: path.join(toolStateDir, 'bad-marks.json'),
    snapshotsDir: path.join(toolStateDir, 'snapshots'),
    cacheDir,
    mirrorDir: path.join(cacheDir, 'repo.git'),
    runDir,
    locksDir: path.join(runDir, 'locks'),
    toolRunDir,
    lockFile: path.join(toolRunDir, 'release.lock'),
    etcDir,
    envFile: path.join(etcDir, 'env'),
    keysDir: path.join(etcDir, 'keys'),
    unitDir: under('/etc/systemd/system'),
    tmpfilesFile: under('/etc/tmpfiles.d/smolotchi.conf'),
  };
}

export function releaseDir(layout: Layout, version: string): string {
  return path.join(layout.releasesDir, version);
}

/** True when running against the real device paths rather than a sandbox root. */
export function isDeviceRoot(layout: Layout): boolean {
  return layout.root === '/';
}
