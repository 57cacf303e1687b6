import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI } from '../support/cli.js';

/**
 * On the device (no --root), mutating commands refuse to run without root: releases must be
 * root-owned so the service user cannot rewrite the code it runs. As root, the test drops to
 * nobody (uid 65534), who cannot change anything on this machine either way.
 */
const asUnprivileged = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

describe('mutating commands without root on the device', () => {
  it.each([['prune'], ['rollback'], ['recover'], ['install', '1.0.0', '--source', '/nonexistent-smolotchi-source']])(
    '%s is refused with a clear message',
    async (...args) => {
      const r = await execa(process.execPath, [CLI, 'release', ...args], { reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore', ...asUnprivileged });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${args[0]} must run as root on the device`);
      expect(r.stderr).toContain('use --root DIR for a sandbox');
    },
  );
});
