import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

/**
 * The compiled better-sqlite3 addon is tied to the Node major it was built with (its module
 * ABI), so the package accepts that major only, and never one older than 20.19.
 */
export function nodeDependency(nodeVersion: string): string {
  const major = Number(nodeVersion.split('.')[0]);
  const floor = major > 20 ? `${major}` : '20.19';
  return `nodejs (>= ${floor}), nodejs (<< ${major + 1})`;
}

async function filesUnder(dir: string, keep: (file: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    if (entry.isFile() && keep(full)) out.push(full);
  }
  return out.sort();
}

/** The C libraries the native addon links (libc6, libstdc++6, ...), as dpkg-shlibdeps computes them. */
export async function sharedLibraryDepends(stage: string): Promise<string[]> {
  const addons = await filesUnder(stage, (f) => f.endsWith('.node'));
  if (addons.length === 0) return [];
  // dpkg-shlibdeps reads debian/control from its working folder: give it a minimal one.
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-shlibdeps-'));
  try {
    await fs.mkdir(path.join(work, 'debian'));
    await fs.writeFile(path.join(work, 'debian', 'control'), 'Source: smolotchi-release\n\nPackage: smolotchi-release\nArchitecture: any\n');
    const r = await execa('dpkg-shlibdeps', ['-O', '--ignore-missing-info', ...addons.map((a) => `-e${a}`)], { cwd: work });
    const line = r.stdout.split('\n').find((l) => l.startsWith('shlibs:Depends=')) ?? '';
    return line.slice('shlibs:Depends='.length).split(',').map((d) => d.trim()).filter(Boolean);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export async function md5sums(stage: string): Promise<string> {
  const files = await filesUnder(stage, (f) => !path.relative(stage, f).startsWith('DEBIAN'));
  const lines: string[] = [];
  for (const file of files) lines.push(`${createHash('md5').update(await fs.readFile(file)).digest('hex')}  ${path.relative(stage, file)}`);
  return lines.join('\n') + '\n';
}

export function debControl(o: { version: string; arch: string; depends: string[]; installedKb: number }): string {
  return [
    'Package: smolotchi-release',
    `Version: ${o.version}`,
    `Architecture: ${o.arch}`,
    'Maintainer: smolotchi-release maintainers <maintainers@smolotchi-release.invalid>',
    `Installed-Size: ${o.installedKb}`,
    `Depends: ${o.depends.join(', ')}`,
    'Section: admin',
    'Priority: optional',
    'Homepage: https://github.com/161sam/smolotchi',
    'Description: atomic, health-gated releases of the smolotchi app',
    ' smolotchi-release installs, switches and rolls back releases of the smolotchi',
    ' Python app on a Raspberry Pi or any systemd host: each release in its own',
    ' folder with its own venv, an atomic switch, a health gate with automatic',
    ' rollback, signed releases and a SQLite history. It also provides the one',
    ' smolotchi command: every command other than "release" runs the current',
    " release's app as the smolotchi user.",
    '',
  ].join('\n');
}
