/**
 * Checks a release's tmpfiles.d lines, which systemd-tmpfiles applies as root.
 * Never lets a release plant links, write content, remove, recurse, or touch paths not the app's.
 */

import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../errors.js';

/**
 * A release's packaging/systemd/tmpfiles.d/*.conf, applied through the tool's policy.
 * systemd-tmpfiles runs as root (at boot and after every deploy), so a tmpfiles line is root
 * acting on the release's word: only lines that create or adjust the app's own folders and files,
 * owned by the service user, pass. Anything that plants links or copies, writes content, removes,
 * recurses, ages files out or makes devices is refused, as is every path outside the app's folders
 * or inside the tool's own root-only state.
 */

export const APP_USER = 'smolotchi';
// The app's runtime, state and log folders: what its units own anyway.
const ALLOWED_ROOTS = ['/run/smolotchi', '/var/lib/smolotchi', '/var/log/smolotchi'];
// The tool's root-only state (history, snapshots) and lock: a release must not chown or chmod them.
const TOOL_ROOTS = ['/var/lib/smolotchi/release', '/run/smolotchi-release'];
// d/D create folders, f creates a file (no content: the argument must be empty), e/z adjust the
// mode and owner of one path. Not: L (symlink), C (copy), w (write), r/R (remove), Z/X/x (recursive
// or exclusions), c/b/p (devices, FIFOs), a/A/h/H (ACLs, attributes), q/Q/v (subvolumes), f+/L+ (replace).
const ALLOWED_TYPES = new Set(['d', 'D', 'f', 'e', 'z']);
// `!` (boot only) and `-` (ignore errors) are harmless; `+` replaces, `=` removes, `^`/`~` read credentials or base64.
const ALLOWED_MODIFIERS = /^[!-]*$/;
const MAX_FILE_BYTES = 64 * 1024;

const under = (p: string, root: string) => p === root || p.startsWith(`${root}/`);

/** Check one non-comment line; returns it normalized to single spaces, or throws naming the reason. */
export function checkTmpfilesLine(line: string, where: string): string {
  const refuse = (why: string) => new ReleaseError(`${where}: tmpfiles line refused (${why}): ${JSON.stringify(line.slice(0, 120))}`);
  // Quotes and escapes would let a field contain spaces or other bytes than it shows.
  if (/["'\\]/.test(line)) throw refuse('quotes and escapes are not accepted');
  const [typeField = '', file = '', mode = '-', user = '-', group = '-', age = '-', ...arg] = line.trim().split(/\s+/);
  const type = typeField[0] ?? '';
  if (!ALLOWED_TYPES.has(type) || !ALLOWED_MODIFIERS.test(typeField.slice(1))) throw refuse(`type ${typeField} is not allowed; only d, D, f, e, z`);
  // Specifiers (%h, %S...) and globs would make the path something other than what is checked here.
  if (/[%*?[\]]/.test(file) || !file.startsWith('/') || path.posix.normalize(file) !== file || file.endsWith('/')) {
    throw refuse('the path must be absolute and normalized, without specifiers or globs');
  }
  if (!ALLOWED_ROOTS.some((r) => under(file, r))) throw refuse(`only paths under ${ALLOWED_ROOTS.join(', ')}`);
  if (TOOL_ROOTS.some((r) => under(file, r))) throw refuse("the release tool's own folders are not the release's");
  // D empties its folder at every boot (systemd-tmpfiles --remove): outside /run that is data loss.
  if (type === 'D' && !under(file, '/run/smolotchi')) throw refuse('D (emptied at boot) only under /run/smolotchi');
  if (user !== APP_USER || (group !== APP_USER && group !== '-')) throw refuse(`owner must be ${APP_USER}`);
  // No world-writable, setuid or setgid modes; `~`/`:` prefixes adjust existing modes: refused too.
  if (mode !== '-' && (!/^0?[0-7]{3}$/.test(mode) || (parseInt(mode, 8) & 0o002) !== 0)) throw refuse('mode must be octal without setuid/setgid/sticky bits or world write');
  // An age makes systemd-tmpfiles-clean delete files; an argument writes content.
  if (age !== '-' || (arg.length > 0 && arg.join(' ') !== '-')) throw refuse('age and argument must be empty (-)');
  return [typeField, file, mode, user, group, '-'].join(' ');
}

/** Read one config file of the release through O_NOFOLLOW: no link out of the release. */
async function readConfig(file: string): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw new ReleaseError(err.code === 'ELOOP' ? `${file} is a symlink; tmpfiles configs must be regular files` : `cannot read ${file}: ${err.message}`);
  });
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw new ReleaseError(`${file} is not a regular file under ${MAX_FILE_BYTES} bytes`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** The checked lines of a release's `tmpfiles.d/*.conf` (under its packaging/systemd/), in file order. */
export async function readReleaseTmpfiles(systemdDir: string): Promise<string[]> {
  const dir = path.join(systemdDir, 'tmpfiles.d');
  const st = await lstat(dir).catch(() => null);
  if (st === null) return [];
  // A linked folder could be anywhere on the device.
  if (!st.isDirectory()) throw new ReleaseError('packaging/systemd/tmpfiles.d of the release is not a plain folder');
  const lines: string[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort()) {
    const text = await readConfig(path.join(dir, name));
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line !== '' && !line.startsWith('#')) lines.push(checkTmpfilesLine(line, `tmpfiles.d/${name}:${i + 1}`));
    });
  }
  return lines;
}

/**
 * The tool's bundled tmpfiles config, then the release's lines for paths it does not already
 * declare: the tool keeps the last word on the folders it needs (its lock, the runtime dirs).
 */
export function composeTmpfiles(bundled: string, releaseLines: string[]): string {
  const declared = new Set(bundled.split('\n').filter((l) => /^\s*[^#\s]/.test(l)).map((l) => l.trim().split(/\s+/)[1]));
  const added = releaseLines.filter((l) => !declared.has(l.split(' ')[1]));
  if (added.length === 0) return bundled;
  return `${bundled.replace(/\n*$/, '\n')}\n# From the release's packaging/systemd/tmpfiles.d (checked by the release tool's policy).\n${added.join('\n')}\n`;
}
