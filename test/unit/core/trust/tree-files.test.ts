import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listTree } from '../../../../src/core/trust/tree-files.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-tree-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
function tree(files: Record<string, string | { link: string } | { mode: number; text: string }>): string {
  const root = path.join(work, `t${n++}`);
  for (const [rel, what] of Object.entries(files)) {
    const abs = path.join(root, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    if (typeof what === 'string') writeFileSync(abs, what);
    else if ('link' in what) symlinkSync(what.link, abs);
    else {
      writeFileSync(abs, what.text);
      chmodSync(abs, what.mode);
    }
  }
  return root;
}

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

describe('listTree', () => {
  it('lists every entry in code-unit order, with the hash, size and mode of each file', async () => {
    const big = Buffer.alloc(200 * 1024, 7); // more than one read buffer
    const root = tree({ 'b.py': 'print(1)\n', 'a/Z.txt': 'z', 'a/b/c.sh': { mode: 0o750, text: '#!/bin/sh\n' }, 'wheels/big.whl': '' });
    writeFileSync(path.join(root, 'wheels/big.whl'), big);
    expect(await listTree(root)).toEqual([
      { path: 'a', type: 'dir' },
      { path: 'a/Z.txt', type: 'file', sha256: sha('z'), size: 1, mode: 0o644 },
      { path: 'a/b', type: 'dir' },
      { path: 'a/b/c.sh', type: 'file', sha256: sha('#!/bin/sh\n'), size: 10, mode: 0o750 },
      { path: 'b.py', type: 'file', sha256: sha('print(1)\n'), size: 9, mode: 0o644 },
      { path: 'wheels', type: 'dir' },
      { path: 'wheels/big.whl', type: 'file', sha256: sha(big), size: big.length, mode: 0o644 },
    ]);
  });

  it('records a symlink by its target text and never reads through it', async () => {
    const outside = tree({ 'secret.txt': 'root only' });
    const root = tree({ 'app.py': 'x', 'leak': { link: path.join(outside, 'secret.txt') }, 'dirlink': { link: outside } });
    expect(await listTree(root)).toEqual([
      { path: 'app.py', type: 'file', sha256: sha('x'), size: 1, mode: 0o644 },
      { path: 'dirlink', type: 'symlink', target: outside },
      { path: 'leak', type: 'symlink', target: path.join(outside, 'secret.txt') },
    ]);
  });

  it('lists a FIFO as a foreign entry instead of waiting on it', async () => {
    // Never opened (lstat sees it): the reads are synchronous, and a FIFO's open would wait for a writer.
    const root = tree({ 'app.py': 'x' });
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    const pipe = (await listTree(root)).find((e) => e.path === 'pipe');
    expect(pipe).toMatchObject({ type: 'file', sha256: 'not-a-regular-file' });
  });

  it('skips an excluded entry and everything below it', async () => {
    const root = tree({ '.venv/bin/python': 'elf', 'app.py': 'x', 'pkg/.venv': 'a file, not the top-level venv' });
    const top = (rel: string) => rel === '.venv';
    expect((await listTree(root, top)).map((e) => e.path)).toEqual(['app.py', 'pkg', 'pkg/.venv']);
  });
});
