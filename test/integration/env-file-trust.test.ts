import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeEnvFile } from '../support/cli.js';

/**
 * /etc/smolotchi/env names the interpreter and the source root uses: it and /etc/smolotchi must be
 * root's (under a --root sandbox: the invoking user's) and writable by nobody else, and a link in
 * its place is refused. Every case exits 4 with a hint, for read-only and mutating commands alike.
 */

let work: string;
let root: string;
let envFile: string;
const asRoot = process.getuid?.() === 0;

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-envtrust-'));
  root = path.join(work, 'root');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fresh(): void {
  rmSync(root, { recursive: true, force: true });
  writeEnvFile(root, { SMOLOTCHI_RELEASE_PYTHON: '/usr/bin/python3' });
  envFile = path.join(root, 'etc/smolotchi/env');
  chmodSync(path.dirname(envFile), 0o755);
  chmodSync(envFile, 0o644);
}

const cases: [string, () => void, RegExp, boolean?][] = [
  ['a group-writable env file', () => chmodSync(envFile, 0o664), /env is writable by group or others \(mode 664\)/],
  ['a world-writable /etc/smolotchi', () => chmodSync(path.dirname(envFile), 0o777), /etc\/smolotchi is writable by group or others/],
  [
    'an env file that is a symlink to a file someone else wrote',
    () => {
      const planted = path.join(work, 'planted-env');
      writeFileSync(planted, 'SMOLOTCHI_RELEASE_PYTHON=/tmp/evil-python\n');
      rmSync(envFile);
      symlinkSync(planted, envFile);
    },
    /env is a symlink/,
  ],
  ['an env file owned by another user', () => chownSync(envFile, 65534, 65534), /env is owned by uid 65534, not root/, true],
  ['/etc/smolotchi owned by another user', () => chownSync(path.dirname(envFile), 65534, 65534), /etc\/smolotchi is owned by uid 65534, not root/, true],
];

describe('/etc/smolotchi/env and its folder must be root-owned and not group/other-writable', () => {
  it('a root-owned 0644 env file in a 0755 folder is read', async () => {
    fresh();
    const r = await runCli(['release', 'status', '--json', '--root', root]);
    // Read and accepted (a refusal would be exit 4); no release is installed, which status says with exit 3.
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toContain('nothing installed under');
  });

  it.each(cases)('%s: refused with exit 4 and a hint', async (_what, plant, message, needsRoot) => {
    if (needsRoot && !asRoot) {
      console.warn('skipped: changing a file owner needs root');
      return;
    }
    fresh();
    plant();
    for (const args of [['status'], ['install', '1.0.0', '--source', path.join(work, 'no-repo')]]) {
      const r = await runCli(['release', ...args, '--root', root]);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/hint: it names the interpreter/);
    }
    expect(readFileSync(envFile, 'utf8')).toMatch(/SMOLOTCHI_RELEASE_PYTHON/);
  });
});
