import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';

/**
 * A fresh temp folder for every test of the calling file, removed after it: call at module level,
 * then read `.path` inside a test. Tests never share a folder, so none sees another's leftovers.
 */
export function tempDirPerTest(prefix: string): { readonly path: string } {
  let dir: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    get path() {
      if (!dir) throw new Error('tempDirPerTest: .path read outside a test');
      return dir;
    },
  };
}
