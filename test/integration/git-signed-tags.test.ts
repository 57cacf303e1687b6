import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { treeState } from '../support/signed-release.js';

/**
 * git sources on a device with /etc/smolotchi/keys/git-allowed-signers: only a tag with a valid
 * ssh signature by an allowed signer installs; unsigned, lightweight and foreign-signed tags are
 * refused with exit 4 and change nothing.
 */

const GIT_ENV = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull, GIT_TERMINAL_PROMPT: '0' };
let work: string;
let repo: string;
let root: string;
let canary: string;

async function sshKey(name: string): Promise<string> {
  const file = path.join(work, name);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return file;
}

/** Re-make tag v<ver> at the same commit: signed with `key`, or lightweight when key is null. */
async function retag(version: string, key: string | null): Promise<void> {
  const git = (...args: string[]) => execa('git', args, { cwd: repo, env: GIT_ENV });
  const commit = (await git('rev-parse', `v${version}^{commit}`)).stdout.trim();
  if (key) await git('-c', 'gpg.format=ssh', '-c', `user.signingkey=${key}`, 'tag', '-s', '-f', '-m', `release ${version}`, `v${version}`, commit);
  else await git('tag', '-f', `v${version}`, commit);
}

const cli = (...args: string[]) => runCli(['release', ...args, '--root', root, '--source', repo]);

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-gitsig-'));
  canary = path.join(work, 'canary.txt');
  writeFileSync(canary, 'must never change\n');
  ({ repo } = await createSampleRepo(path.join(work, 'app'), ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0'].map((version) => ({ version }))));
  const trusted = await sshKey('trusted');
  const stranger = await sshKey('stranger');
  await retag('1.0.0', trusted);
  await retag('1.2.0', stranger);
  await retag('1.3.0', null);
  await retag('1.4.0', trusted);
  root = path.join(work, 'root');
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
  const keys = path.join(root, 'etc/smolotchi/keys');
  mkdirSync(keys, { recursive: true, mode: 0o755 });
  for (const d of [keys, path.dirname(keys)]) chmodSync(d, 0o755); // whatever the umask
  const signers = path.join(keys, 'git-allowed-signers');
  writeFileSync(signers, `maintainer@example.invalid namespaces="git" ${readFileSync(`${trusted}.pub`, 'utf8')}`);
  chmodSync(signers, 0o644);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('git tags must be signed when git-allowed-signers is configured', () => {
  it('a tag signed by an allowed signer installs', async () => {
    const r = await cli('install', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readlinkSync(path.join(root, 'opt/smolotchi/current'))).toBe('releases/1.0.0');
  });

  it.each([
    ['1.1.0', 'an unsigned annotated tag', /not signed by an allowed signer/],
    ['1.2.0', 'a tag signed by a key not in the allowed signers', /not signed by an allowed signer/],
    ['1.3.0', 'a lightweight tag', /not signed by an allowed signer/],
  ])('%s: %s is refused with exit 4, nothing changes', async (version, _what, pattern) => {
    const before = treeState(root, [canary]).filter((l) => !l.startsWith('var/cache'));
    const r = await cli('install', version);
    expect(r.exitCode, r.stderr).toBe(4);
    expect(r.stderr).toMatch(pattern);
    expect(treeState(root, [canary]).filter((l) => !l.startsWith('var/cache'))).toEqual(before);
    expect(existsSync(path.join(root, 'opt/smolotchi/releases', version))).toBe(false);
  });

  it('a group-writable allowed-signers file is refused (exit 4)', async () => {
    const signers = path.join(root, 'etc/smolotchi/keys/git-allowed-signers');
    chmodSync(signers, 0o664);
    try {
      const r = await cli('install', '1.4.0');
      expect(r.exitCode).toBe(4);
      expect(r.stderr).toContain('writable by group or others');
    } finally {
      chmodSync(signers, 0o644);
    }
    expect((await cli('install', '1.4.0')).exitCode).toBe(0);
  });
});

describe('keys fail closed for every source', () => {
  /** A fresh device root with the given trust files in /etc/smolotchi/keys. */
  function deviceWith(name: string, files: Record<string, string>): string {
    const r = path.join(work, name);
    writeEnvFile(r, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const keys = path.join(r, 'etc/smolotchi/keys');
    mkdirSync(keys, { recursive: true, mode: 0o755 });
    for (const d of [keys, path.dirname(keys)]) chmodSync(d, 0o755);
    for (const [f, text] of Object.entries(files)) writeFileSync(path.join(keys, f), text, { mode: 0o644 });
    return r;
  }
  const releaseKey = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const on = (r: string, ...args: string[]) => runCli(['release', ...args, '--root', r]);

  it.each([
    ['a release key (.pub)', () => ({ 'release.pub': releaseKey() })],
    ['a revocation list', () => ({ revoked: '0123456789abcdef\n' })],
  ])('with %s and no git-allowed-signers, a git source is refused (exit 4), whatever its transport', async (_what, files) => {
    const r = deviceWith(`closed-${Math.random().toString(16).slice(2)}`, files());
    for (const source of [repo, `file://${repo}`]) {
      const run = await on(r, 'install', '1.0.0', '--source', source);
      expect(run.exitCode, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/requires signed releases .*no git-allowed-signers to check a git tag against/);
      expect(run.stderr).toMatch(/hint: .*git-allowed-signers/);
    }
    expect(existsSync(path.join(r, 'opt/smolotchi/current'))).toBe(false);
    expect(existsSync(path.join(r, 'opt/smolotchi/releases/1.0.0'))).toBe(false);
  });

  it('a release complete on disk is checked against today\'s keys before install or rollback --to switches to it', async () => {
    const r = path.join(work, 'keys-later');
    writeEnvFile(r, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    // Installed while the device had no keys: 1.0.0 carries a trusted signature, 1.3.0 a lightweight tag.
    for (const v of ['1.0.0', '1.3.0']) expect((await on(r, 'install', v, '--source', repo)).exitCode).toBe(0);
    const signers = readFileSync(path.join(root, 'etc/smolotchi/keys/git-allowed-signers'), 'utf8');
    const keys = path.join(r, 'etc/smolotchi/keys');
    mkdirSync(keys, { mode: 0o755 });
    writeFileSync(path.join(keys, 'git-allowed-signers'), signers, { mode: 0o644 });

    const signed = await on(r, 'rollback', '--to', '1.0.0');
    expect(signed.exitCode, signed.stderr).toBe(0);
    const current = () => readlinkSync(path.join(r, 'opt/smolotchi/current'));
    expect(current()).toBe('releases/1.0.0');
    for (const args of [['install', '1.3.0', '--source', repo], ['rollback', '--to', '1.3.0']]) {
      const run = await on(r, ...args);
      expect(run.exitCode, `${args.join(' ')}: ${run.stderr}`).toBe(4);
      expect(run.stderr).toMatch(/release 1\.3\.0 on disk does not pass today's keys: .*not signed by an allowed signer/);
      expect(current()).toBe('releases/1.0.0');
    }
  });
});
