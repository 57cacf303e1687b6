import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillHistory } from '../../bench/big-history.js';
import { openToolHistory } from '../../src/core/state/tool-history.js';
import { makeLayout } from '../../src/core/layout.js';
import { silentLogger } from '../../src/core/log.js';
import { CLI, runCli } from '../support/cli.js';

/**
 * The CLI exits as soon as its output is written (not after Node's own teardown): everything it
 * prints still reaches a reader, however large, and a reader that goes away early ends it cleanly.
 */
describe('the CLI output through a pipe', () => {
  const DEPLOYS = 3000;
  // One root for both tests: they only read it.
  const root = { path: '' };
  beforeAll(() => {
    root.path = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-cli-output-'));
    // A history far larger than a pipe's buffer, so the writes wait for the reader.
    const layout = makeLayout(root.path);
    openToolHistory(layout, silentLogger).close();
    fillHistory(layout.historyDb, DEPLOYS, 1, ['1.0.0', '1.1.0', '1.2.0']);
  });
  afterAll(() => rmSync(root.path, { recursive: true, force: true }));

  it('a reader gets all of it: `history --json` of 3000 deploys parses whole', async () => {
    const r = await runCli(['release', 'history', '--root', root.path, '--json', '--limit', String(DEPLOYS)]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(256 * 1024);
    expect(r.json<{ deploys: unknown[] }>().deploys).toHaveLength(DEPLOYS);
  });

  it('a reader that stops after the first chunk (`| head`) ends the command, exit 0', async () => {
    const child = spawn(process.execPath, [CLI, 'release', 'history', '--root', root.path, '--limit', String(DEPLOYS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
  });
});
