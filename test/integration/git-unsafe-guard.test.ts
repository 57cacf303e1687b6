import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { syncMirror } from '../../src/adapters/git.js';
import { gitAllowingFailure, type GitCallOptions } from '../../src/adapters/git-run.js';
import { ReleaseError } from '../../src/core/errors.js';
import { HANG_GUARD_MS } from '../support/cli.js';
import { commitFiles, gitRepo, tag } from '../support/git-repo.js';

/**
 * Behind checkSource and SAFE_TAG, simple-git's own guard is on: an option or setting that runs a
 * command (--upload-pack, core.sshCommand, protocol.<x>.allow) is refused before any git runs,
 * even when it reaches the adapter's runner directly. Each attack is first shown to work on plain
 * git, then shown to leave no marker through the adapter.
 */

let work: string;
let repo: string;
let mirror: string;
const marker = () => path.join(work, 'PWNED');

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-gitguard-'));
  repo = (await gitRepo(path.join(work, 'src'))).dir;
  await commitFiles({ dir: repo }, { 'a.txt': 'a' }, 'one');
  await tag({ dir: repo }, 'v1.0.0');
  mirror = path.join(work, 'cache', 'repo.git');
  await syncMirror(repo, mirror);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => rmSync(marker(), { force: true }));

/** Plain git, as an attacker would like ours to run: no scrubbed environment, no guard. */
async function plainGit(args: string[]) {
  const env = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull, GIT_TERMINAL_PROMPT: '0', GIT_ALLOW_PROTOCOL: undefined };
  return execa('git', args, { cwd: work, env, reject: false, timeout: HANG_GUARD_MS });
}

// `;:` ends the command git builds around the value, so the marker is all it creates.
const attacks: [string, (m: string) => { argv: string[]; config?: string[] }][] = [
  ['--upload-pack on ls-remote', (m) => ({ argv: ['ls-remote', `--upload-pack=touch ${m};:`, '--', repo] })],
  ['-c core.sshCommand', (m) => ({ argv: ['ls-remote', '--', 'ssh://example.invalid/repo'], config: [`core.sshCommand=touch ${m};:`] })],
  ['-c protocol.ext.allow in argv', (m) => ({ argv: ['-c', 'protocol.ext.allow=always', 'ls-remote', '--', `ext::sh -c touch% ${m}`] })],
  ['-c remote.origin.uploadpack on fetch', (m) => ({ argv: ['-c', `remote.origin.uploadpack=touch ${m};:`, 'fetch', '--quiet', 'origin'] })],
];

describe("simple-git's unsafe-option guard is on", () => {
  it.each(attacks)('the attack is real: plain git with %s runs the command', async (_name, make) => {
    const { argv, config = [] } = make(marker());
    const gitDir = argv.includes('fetch') ? [`--git-dir=${mirror}`] : [];
    await plainGit([...config.flatMap((c) => ['-c', c]), ...gitDir, ...argv]);
    expect(existsSync(marker())).toBe(true);
  });

  it.each(attacks)('%s through the adapter is refused with exit 2 and runs nothing', async (_name, make) => {
    const { argv, config } = make(marker());
    const options: GitCallOptions = { config };
    const err = await gitAllowingFailure(argv.includes('fetch') ? mirror : null, argv, options).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ReleaseError);
    expect((err as ReleaseError).exitCode).toBe(2);
    expect((err as Error).message).toMatch(/^git call refused by simple-git/);
    expect(existsSync(marker())).toBe(false);
  });

  it("root's environment cannot hand git a setting: GIT_CONFIG_COUNT/KEY/VALUE never reach it", async () => {
    const attack = {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'remote.origin.uploadpack',
      GIT_CONFIG_VALUE_0: `touch ${marker()};:`,
    };
    const r = await execa('git', [`--git-dir=${mirror}`, 'fetch', '--quiet', 'origin'], { env: attack, reject: false, timeout: HANG_GUARD_MS });
    expect(r.exitCode).not.toBe(0);
    expect(existsSync(marker())).toBe(true); // the attack is real
    rmSync(marker());
    const saved = { ...process.env };
    Object.assign(process.env, attack);
    try {
      await syncMirror(repo, mirror); // fetch from origin, as an install does
    } finally {
      for (const k of Object.keys(attack)) if (saved[k] === undefined) delete process.env[k];
    }
    expect(existsSync(marker())).toBe(false);
  });
});
