/**
 * `npm run package`: what an operator installs. Writes to dist/pkg/:
 *   smolotchi-release-<ver>.tgz                  the npm tarball (compiled dist/src, migrations, packaging)
 *   smolotchi-release_<ver>-1_<arch>.deb         a Debian package for this machine's architecture
 * The .deb carries the production node_modules with better-sqlite3 compiled for this machine's
 * architecture and Node major, so a device needs no compiler and no registry.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { packageRoot, TOOL_VERSION } from '../src/core/package-root.js';
import { renderToolUnit, TOOL_UNIT } from '../src/core/units/units.js';
import { debControl, md5sums, nodeDependency, sharedLibraryDepends } from './deb-control.js';

const REPO = packageRoot();
// `--out DIR` (tests): anywhere else than dist/pkg/.
const outFlag = process.argv.indexOf('--out');
const OUT = outFlag > 0 && process.argv[outFlag + 1] ? path.resolve(process.argv[outFlag + 1]!) : path.join(REPO, 'dist', 'pkg');
const LIB = 'usr/lib/smolotchi-release';
const DOC = 'usr/share/doc/smolotchi-release';
export const ENTRY = '/usr/bin/smolotchi';
const DEB_REVISION = '1';

const timings: Record<string, number> = {};
async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[name] = Math.round(performance.now() - started);
    process.stderr.write(`package: ${name} ${(timings[name]! / 1000).toFixed(1)} s\n`);
  }
}

const gz = (data: string | Buffer) => gzipSync(data, { level: 9 }); // zlib writes no name and mtime 0: like gzip -9n

async function write(stage: string, rel: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const file = path.join(stage, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content, { mode });
  await fs.chmod(file, mode);
}

/**
 * Production dependencies: a copy of this checkout's node_modules pruned to --omit=dev, which
 * keeps the better-sqlite3 addon already compiled here (`npm ci --omit=dev` would compile it again,
 * ~1 min on a Pi-class CPU). Correct because it is the same lockfile, architecture and Node.
 */
async function productionModules(lib: string): Promise<void> {
  await fs.cp(path.join(REPO, 'node_modules'), path.join(lib, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  await execa('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: lib, stdin: 'ignore' });
  const sqlite = path.join(lib, 'node_modules', 'better-sqlite3');
  // Build leftovers: the sqlite sources, object files, the test extension; the addon stays.
  for (const rel of ['deps', 'src', 'binding.gyp', 'build/Release/obj', 'build/Release/obj.target', 'build/Release/.deps', 'build/Release/test_extension.node', 'build/Release/sqlite3.a']) {
    await fs.rm(path.join(sqlite, rel), { recursive: true, force: true });
  }
  for (const entry of await fs.readdir(path.join(sqlite, 'build'))) {
    if (entry !== 'Release') await fs.rm(path.join(sqlite, 'build', entry), { recursive: true, force: true });
  }
  for (const entry of await fs.readdir(path.join(sqlite, 'build', 'Release'))) {
    if (entry !== 'better_sqlite3.node') await fs.rm(path.join(sqlite, 'build', 'Release', entry), { recursive: true, force: true });
  }
  await fs.rm(path.join(lib, 'node_modules', '.bin'), { recursive: true, force: true });
  // Dotfiles of the published packages (.npmignore, .eslintrc, CI configs) are not needed to run.
  for (const entry of await fs.readdir(path.join(lib, 'node_modules'), { withFileTypes: true, recursive: true })) {
    if (entry.name.startsWith('.') && entry.name !== '.package-lock.json') await fs.rm(path.join(entry.parentPath, entry.name), { recursive: true, force: true });
  }
  // Debian ships no debug symbols in the main package.
  await execa('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', path.join(sqlite, 'build', 'Release', 'better_sqlite3.node')]);
}

/** Debian wants plain modes: folders 0755, files 0644, executables only where meant. */
async function normalizeModes(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      await fs.chmod(full, 0o755);
      await normalizeModes(full);
    } else if (entry.isFile()) {
      // Scripts (a #! first line: cli.js, the bin scripts of dependencies) stay runnable.
      const head = Buffer.alloc(2);
      const handle = await fs.open(full, 'r');
      await handle.read(head, 0, 2, 0);
      await handle.close();
      await fs.chmod(full, head.toString() === '#!' ? 0o755 : 0o644);
    }
  }
}

async function stageDeb(stage: string, arch: string): Promise<string> {
  const lib = path.join(stage, LIB);
  await step('copy the compiled tool', async () => {
    await fs.mkdir(lib, { recursive: true });
    for (const rel of ['package.json', 'package-lock.json', 'migrations', 'packaging']) await fs.cp(path.join(REPO, rel), path.join(lib, rel), { recursive: true });
    await fs.cp(path.join(REPO, 'dist', 'src'), path.join(lib, 'dist', 'src'), { recursive: true });
  });
  await step('production node_modules (copy + npm prune --omit=dev)', () => productionModules(lib));
  await fs.rm(path.join(lib, 'package-lock.json'));
  // The boot check and every rendered unit name /usr/bin/smolotchi, wherever node lives.
  await write(stage, `${LIB}/entry-point`, `${ENTRY}\n`);
  await normalizeModes(path.join(stage, 'usr'));

  const deb = path.join(REPO, 'deb');
  await write(stage, 'usr/bin/smolotchi', `#!/bin/sh\n# smolotchi-release: the tool, run by the system's Node.js.\nexec /usr/bin/node /${LIB}/dist/src/cli.js "$@"\n`, 0o755);
  await write(stage, `usr/lib/systemd/system/${TOOL_UNIT}`, (await renderToolUnit(path.join(REPO, 'packaging'), ENTRY)).content);
  await write(stage, 'usr/lib/sysusers.d/smolotchi-release.conf', await fs.readFile(path.join(REPO, 'packaging', 'sysusers', 'smolotchi.conf')));
  await write(stage, 'usr/share/man/man8/smolotchi-release.8.gz', gz(await fs.readFile(path.join(deb, 'smolotchi-release.8'))));
  await fs.symlink('smolotchi-release.8.gz', path.join(stage, 'usr/share/man/man8/smolotchi.8.gz'));
  await write(stage, 'usr/share/bash-completion/completions/smolotchi', await fs.readFile(path.join(deb, 'smolotchi.bash-completion')));
  await write(stage, `${DOC}/copyright`, await fs.readFile(path.join(deb, 'copyright')));
  await write(stage, `${DOC}/changelog.gz`, gz(await fs.readFile(path.join(REPO, 'CHANGELOG.md'))));
  await write(stage, `${DOC}/README.md.gz`, gz(await fs.readFile(path.join(REPO, 'README.md'))));
  const version = `${TOOL_VERSION}-${DEB_REVISION}`;
  const date = (await execa('git', ['log', '-1', '--format=%aD'], { cwd: REPO, reject: false })).stdout.trim() || 'Thu, 01 Jan 2026 00:00:00 +0000';
  await write(stage, `${DOC}/changelog.Debian.gz`, gz(debianChangelog(version, date)));
  await write(stage, 'usr/share/lintian/overrides/smolotchi-release', await fs.readFile(path.join(deb, 'lintian-overrides')));

  const depends = [nodeDependency(process.versions.node), 'git', 'python3-venv', 'python3-pip', ...(await sharedLibraryDepends(stage))];
  const installedKb = Number((await execa('du', ['-sk', '--apparent-size', stage])).stdout.split(/\s/)[0]);
  await write(stage, 'DEBIAN/control', debControl({ version, arch, depends, installedKb }));
  for (const script of ['postinst', 'postrm']) await write(stage, `DEBIAN/${script}`, await fs.readFile(path.join(deb, script)), 0o755);
  await write(stage, 'DEBIAN/md5sums', await md5sums(stage));
  return version;
}

function debianChangelog(version: string, date: string): string {
  return [
    `smolotchi-release (${version}) unstable; urgency=medium`,
    '',
    `  * smolotchi-release ${TOOL_VERSION}; see /usr/share/doc/smolotchi-release/changelog.gz.`,
    '',
    ` -- smolotchi-release maintainers <maintainers@smolotchi-release.invalid>  ${date}`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  await fs.rm(OUT, { recursive: true, force: true });
  await fs.mkdir(OUT, { recursive: true });
  // dist/ is built by `npm run package` just before; prepack would build it a second time.
  const tarball = await step('npm pack', async () => {
    const r = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', OUT], { cwd: REPO });
    return path.join(OUT, (JSON.parse(r.stdout) as { filename: string }[])[0]!.filename);
  });
  const arch = (await execa('dpkg', ['--print-architecture'])).stdout.trim();
  const stage = await fs.mkdtemp(path.join(OUT, 'deb-root-'));
  await fs.chmod(stage, 0o755); // the package's ./ entry
  try {
    const version = await stageDeb(stage, arch);
    const file = path.join(OUT, `smolotchi-release_${version}_${arch}.deb`);
    await step('dpkg-deb --build', () => execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, file]));
    process.stdout.write(`${tarball}\n${file}\n`);
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

await main();
