import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { lsRemoteTags, resolveTagCommit, resolveTagCommits, syncMirror } from '../../src/adapters/git.js';
import { taggedTreeBytes } from '../../src/adapters/git-size.js';
import { UsageError } from '../../src/core/errors.js';
import { fetchGit } from '../../src/core/build/sources/git.js';
import { commitFiles, gitRepo, tag } from '../support/git-repo.js';

/**
 * Which runner each git call takes: every call that carries the operator's source string (first
 * clone, remote set-url, ls-remote) passes simple-git's unsafe-option guard; an install from an
 * existing mirror, whose git argv is all our own code's, spawns git directly and never reaches
 * simple-git. Hostile tag names are refused before either runner starts a git.
 */

const calls = vi.hoisted(() => ({ guarded: [] as string[][], direct: [] as string[][] }));

// simple-git as it is, recording the argv each call hands to its guard.
vi.mock('simple-git', async (importOriginal) => {
  const real = await importOriginal<typeof import('simple-git')>();
  const simpleGit = ((...args: Parameters<typeof real.simpleGit>) => {
    const g = real.simpleGit(...args);
    const raw = g.raw.bind(g) as (argv: string[]) => Promise<string>;
    (g as { raw: unknown }).raw = (argv: string[]) => {
      calls.guarded.push(argv);
      return raw(argv);
    };
    return g;
  }) as typeof real.simpleGit;
  return { ...real, simpleGit };
});

// node:child_process as it is, recording every git our own code spawns (simple-git's spawns are not seen here).
vi.mock('node:child_process', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:child_process')>();
  const spawn = ((file: string, args: string[], options: object) => {
    if (file === 'git') calls.direct.push(args);
    return real.spawn(file, args, options);
  }) as typeof real.spawn;
  return { ...real, spawn };
});

let work: string;
let repo: string;
let mirror: string;
let n = 0;
const subcommand = (argv: string[]) => argv.find((a) => !a.startsWith('-') && !argv[argv.indexOf(a) - 1]?.match(/^-c$/));

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-gitrunners-'));
  repo = (await gitRepo(path.join(work, 'src'))).dir;
  await commitFiles({ dir: repo }, { 'a.txt': 'a' }, 'one');
  await tag({ dir: repo }, 'v1.0.0');
  mirror = path.join(work, 'cache', 'repo.git');
});
afterAll(() => fs.rm(work, { recursive: true, force: true }));
beforeEach(() => {
  calls.guarded.length = 0;
  calls.direct.length = 0;
});

describe('git runners', () => {
  it("every call carrying the operator's source string passes simple-git's guard, and never a direct spawn", async () => {
    await syncMirror(repo, mirror); // first clone
    const alias = path.join(work, 'alias');
    await fs.symlink(repo, alias);
    await syncMirror(alias, mirror); // another spelling of the source: remote set-url
    await lsRemoteTags(repo);
    expect(calls.guarded.map(subcommand)).toEqual(['clone', 'remote', 'ls-remote']);
    expect(calls.guarded[0]).toEqual(expect.arrayContaining(['--', repo]));
    expect(calls.guarded[1]).toEqual(expect.arrayContaining(['set-url', '--', 'origin', alias]));
    expect(calls.guarded[2]).toEqual(expect.arrayContaining(['--', repo]));
    // The direct spawns (the fetch after set-url) name the remote, never the operator's string.
    expect(calls.direct.map(subcommand)).toEqual(['fetch']);
    expect(calls.direct.flat().some((a) => a.includes(repo) || a.includes(alias))).toBe(false);
  });

  it('an install from an existing mirror spawns git directly and never reaches simple-git', async () => {
    await syncMirror(repo, mirror); // (back to the first spelling of the source)
    calls.guarded.length = 0;
    calls.direct.length = 0;
    expect(await taggedTreeBytes(mirror, '1.0.0')).toBe(1); // the preflight's tree size
    const stagingDir = path.join(work, 'staging', `s${n++}`);
    const fetched = await fetchGit({ source: repo, mirrorDir: mirror, version: '1.0.0', stagingDir });
    expect(await fs.readFile(path.join(stagingDir, 'a.txt'), 'utf8')).toBe('a');
    expect(fetched.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(calls.guarded).toEqual([]);
    expect(calls.direct.map(subcommand)).toEqual(['ls-tree', 'fetch', 'for-each-ref', 'archive']);
  });

  it.each(['v*', 'v1.0.0^{tree}', '--output=/tmp/x', 'v1.0.0..HEAD', '-h', 'v1.0.0 --all', ''])(
    'the hostile tag name %j is refused before any git runs',
    async (hostile) => {
      await expect(resolveTagCommit(mirror, hostile)).rejects.toBeInstanceOf(UsageError);
      await expect(resolveTagCommits(mirror, ['v1.0.0', hostile])).rejects.toBeInstanceOf(UsageError);
      expect(calls.direct).toEqual([]);
      expect(calls.guarded).toEqual([]);
    },
  );

  it.each(['*', '1.0.0^{tree}', '1.0.0..HEAD', '1.0.0 --all', '1.0.0:a.txt'])(
    'the preflight asks git nothing about the hostile version %j',
    async (hostile) => {
      expect(await taggedTreeBytes(mirror, hostile)).toBeNull();
      expect(calls.direct).toEqual([]);
      expect(calls.guarded).toEqual([]);
    },
  );
});
