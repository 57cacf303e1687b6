/**
 * `release pack`: a reproducible signed artifact (archive, .sha256, manifest, signature) of a tag.
 * Never writes a timestamp, replaces a wheel the repository ships, or uses a key others can read.
 */

import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTarGz } from '../adapters/tar.js';
import type { Context } from '../core/context.js';
import { IntegrityError, UsageError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { encodeManifest } from '../core/trust/manifest.js';
import { archiveFileName, describeArchive, writeReleaseFiles } from '../core/trust/pack.js';
import { assertNoToolFiles } from '../core/build/release-files.js';
import { MAX_KEY_FILE_BYTES, parsePrivateKey, signManifest } from '../core/trust/signing.js';
import { fetchGit } from '../core/build/sources/git.js';
import { splitSourceCredentials } from '../core/build/source-credentials.js';
import { parseVersion } from '../core/version.js';

export interface PackOptions {
  repo: string;
  version: string;
  key: string;
  out?: string;
  wheels?: string;
}

export interface PackResult {
  command: 'pack';
  version: string;
  commit: string;
  keyId: string;
  sha256: string;
  size: number;
  files: number;
  outputs: string[];
  exitCode: number;
}

/** The signing key: ed25519, and readable by its owner only (like ssh, refuse a key others could copy). */
async function loadSigningKey(file: string): Promise<ReturnType<typeof parsePrivateKey>> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new UsageError(`cannot read the signing key ${file}: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_KEY_FILE_BYTES) throw new UsageError(`${file} is not a key file`);
    if (st.mode & 0o077) throw new IntegrityError(`signing key ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)})`, `chmod 600 ${file}`);
    return parsePrivateKey(await handle.readFile(), file);
  } finally {
    await handle.close();
  }
}

/** Wheels for offline venv builds go to `wheels/`: regular files only, no name clashes. */
async function addWheels(from: string, to: string): Promise<void> {
  const names = await readdir(from).catch(() => {
    throw new UsageError(`--wheels ${from} is not a readable folder`);
  });
  await mkdir(to, { recursive: true });
  for (const name of names.sort()) {
    const st = await lstat(path.join(from, name));
    if (!st.isFile()) throw new UsageError(`--wheels: ${name} is not a regular file (pip's --find-links wants a flat folder)`);
    // COPYFILE_EXCL: a wheel the repository already ships is never silently replaced.
    await copyFile(path.join(from, name), path.join(to, name), constants.COPYFILE_EXCL).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST' ? new UsageError(`--wheels: the release already ships wheels/${name}`) : err;
    });
  }
}

/**
 * `pack --repo R --version X.Y.Z --key K [--out DIR] [--wheels DIR]`: export the tag, add wheels,
 * write smolotchi-X.Y.Z.tar.gz, its .sha256, the canonical manifest and its ed25519 signature.
 * No timestamps anywhere: the same tag and key give the same bytes.
 */
export async function pack(options: PackOptions, _ctx: Context): Promise<PackResult> {
  const version = parseVersion(options.version);
  const { key, keyId } = await loadSigningKey(path.resolve(options.key));
  const work = await mkdtemp(path.join(os.tmpdir(), 'smolotchi-pack-'));
  try {
    const tree = path.join(work, 'tree');
    const { url, auth } = splitSourceCredentials(options.repo);
    const fetched = await fetchGit({ source: url, auth, mirrorDir: path.join(work, 'mirror.git'), version, stagingDir: tree });
    if (options.wheels) await addWheels(path.resolve(options.wheels), path.join(tree, 'wheels'));
    await assertNoToolFiles(tree, version);
    const archive = path.join(work, archiveFileName(version));
    await createTarGz(tree, archive, `smolotchi-${version}`);
    const manifest = await describeArchive(archive, version, fetched.commit!, work);
    const manifestBytes = encodeManifest(manifest);
    const outputs = await writeReleaseFiles(
      path.resolve(options.out ?? '.'), version, archive, manifest.archive.sha256, manifestBytes, signManifest(manifestBytes, key, keyId),
    );
    return {
      command: 'pack', version, commit: fetched.commit!, keyId, sha256: manifest.archive.sha256, size: manifest.archive.size,
      files: manifest.files.filter((f) => f.type === 'file').length, outputs, exitCode: ExitCode.ok,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
