import Database from 'better-sqlite3';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { makeLayout } from '../../src/core/layout.js';
import { escapeControl } from '../../src/render/escape.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { runGit } from '../support/git-repo.js';

/**
 * A release's output and the history's text reach root's terminal escaped: no ESC, BEL, CSI or
 * carriage return arrives raw in human output; --json keeps the characters (JSON-encoded).
 */

// Clear the screen, retitle the window, ring the bell, return the carriage over a forged line; C1 CSI too.
const HOSTILE = '\u001b[2J\u001b]0;owned\u0007\rinstalled 9.9.9 ok\u009b31m';
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

let work: string;
let root: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-escapes-'));
  const { repo } = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }, { version: '1.1.0' }]);
  // 1.1.0's own health check prints terminal escapes and fails.
  await runGit(repo, ['checkout', '--quiet', 'v1.1.0']);
  const check = path.join(repo, 'packaging', 'health-check');
  mkdirSync(path.dirname(check), { recursive: true });
  writeFileSync(check, `#!/bin/sh\nprintf '${HOSTILE.replace(/\u001b/g, '\\033').replace(/\u0007/g, '\\007').replace(/\r/g, '\\r').replace(/\u009b/g, '\\302\\233')}\\n' >&2\nexit 1\n`);
  chmodSync(check, 0o755);
  await runGit(repo, ['add', '--all']);
  await runGit(repo, ['commit', '--quiet', '-m', 'hostile check']);
  await runGit(repo, ['tag', '-f', '-a', '-m', 'release 1.1.0', 'v1.1.0']);
  root = path.join(work, 'root');
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
  expect((await runCli(['release', 'install', '1.0.0', '--root', root])).exitCode).toBe(0);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('control characters are escaped in human output', () => {
  it('escapeControl shows C0, DEL and C1 controls as \\xNN, keeps newline and tab', () => {
    expect(escapeControl('a\u001b[31mb\u0007c\rd\u009be\u007f\tf\ng')).toBe('a\\x1b[31mb\\x07c\\x0dd\\x9be\\x7f\tf\ng');
  });

  it("a release's health-check output: escaped on stdout and stderr", async () => {
    const r = await runCli(['release', 'install', '1.1.0', '--root', root]);
    expect(r.exitCode, r.stderr).toBe(5);
    expect(r.stdout + r.stderr).toMatch(/\\x1b\[2J\\x1b\]0;owned\\x07\\x0dinstalled 9\.9\.9 ok\\x9b31m/);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });

  it('history text: escaped in the table, kept (encoded) in --json', async () => {
    const db = new Database(makeLayout(root).historyDb);
    db.prepare("UPDATE deploys SET error = ?, user = ? WHERE id = (SELECT MAX(id) FROM deploys)").run(`failed: ${HOSTILE}`, `root${HOSTILE}`);
    db.close();
    for (const cmd of ['history', 'status']) {
      const r = await runCli(['release', cmd, '--root', root]);
      expect(r.stdout, cmd).toContain('\\x1b[2J');
      expect(r.stdout, cmd).not.toMatch(RAW_CONTROL);
    }
    const json = await runCli(['release', 'history', '--json', '--root', root]);
    expect(json.stdout).toContain('\\u001b[2J');
    expect(json.json<{ deploys: { error: string }[] }>().deploys[0]!.error).toBe(`failed: ${HOSTILE}`);
  });
});
