import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { HANG_GUARD_MS } from './cli.js';

/**
 * Real git repositories for tests (after changesets' gitdir()): default branch forced to main,
 * gc off, identity and no-signing written to the repo's own config, and the developer's global
 * and system config ignored, so a test behaves the same on every machine.
 */

export interface GitRepo {
  dir: string;
}

export type RepoFile = string | { content: string; mode?: number } | { symlink: string };

const ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: os.devNull,
  GIT_TERMINAL_PROMPT: '0',
  GIT_DIR: undefined,
  GIT_WORK_TREE: undefined,
  GIT_INDEX_FILE: undefined,
};

/** Run git in `cwd` and return trimmed stdout (throws on failure). */
export async function runGit(cwd: string, args: string[], input?: string): Promise<string> {
  const r = await execa('git', args, { cwd, env: ENV, input, stdin: input === undefined ? 'ignore' : 'pipe', timeout: HANG_GUARD_MS });
  return r.stdout.trim();
}

/** Initialise a working repository in `dir` (created if missing). */
export async function gitRepo(dir: string): Promise<GitRepo> {
  await fs.mkdir(dir, { recursive: true });
  await runGit(dir, ['init', '--quiet', '--initial-branch=main']);
  const config: [string, string][] = [
    ['user.name', 'Test User'],
    ['user.email', 'test@example.invalid'],
    ['commit.gpgSign', 'false'],
    ['tag.gpgSign', 'false'],
    ['gc.auto', '0'],
    ['core.autocrlf', 'false'],
  ];
  for (const [k, v] of config) await runGit(dir, ['config', k, v]);
  return { dir };
}

/** Write `files` (relative paths), stage everything and commit; returns the commit id. */
export async function commitFiles(repo: GitRepo, files: Record<string, RepoFile>, message: string): Promise<string> {
  for (const [rel, spec] of Object.entries(files)) {
    const file = path.join(repo.dir, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.rm(file, { force: true });
    if (typeof spec === 'string') {
      await fs.writeFile(file, spec);
    } else if ('symlink' in spec) {
      await fs.symlink(spec.symlink, file);
    } else {
      await fs.writeFile(file, spec.content);
      if (spec.mode !== undefined) await fs.chmod(file, spec.mode);
    }
  }
  await runGit(repo.dir, ['add', '--all']);
  await runGit(repo.dir, ['commit', '--quiet', '--allow-empty', '-m', message]);
  return runGit(repo.dir, ['rev-parse', 'HEAD']);
}

/** Tag HEAD (or `opts.ref`); `force` moves an existing tag. */
export async function tag(
  repo: GitRepo,
  name: string,
  opts: { annotated?: boolean; force?: boolean; ref?: string } = {},
): Promise<void> {
  const args = ['tag'];
  if (opts.force) args.push('--force');
  if (opts.annotated) args.push('-a', '-m', `release ${name}`);
  args.push('--', name);
  if (opts.ref) args.push(opts.ref);
  await runGit(repo.dir, args);
}
