import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, loadSettings, parseEnvFile, settingsFromEnv } from '../../../src/core/settings.js';
import { ReleaseError } from '../../../src/core/errors.js';

describe('env file', () => {
  it('parses KEY=VALUE the way systemd EnvironmentFile= does', () => {
    const pairs = parseEnvFile('# comment\n\nSMOLOTCHI_WEB_PORT=8099\nexport SMOLOTCHI_RELEASE_KEEP="5"\nSMOLOTCHI_DB=\'/x y\'\n');
    expect(Object.fromEntries(pairs)).toEqual({ SMOLOTCHI_WEB_PORT: '8099', SMOLOTCHI_RELEASE_KEEP: '5', SMOLOTCHI_DB: '/x y' });
  });

  it('a malformed line names the file and line', () => {
    expect(() => parseEnvFile('A=1\nthis is not a setting\n', '/etc/smolotchi/env')).toThrow('/etc/smolotchi/env:2');
  });

  it('our keys become settings, the app keys it shares are read, other app keys are passed over', () => {
    const s = settingsFromEnv(
      new Map([
        ['SMOLOTCHI_RELEASE_KEEP', '5'],
        ['SMOLOTCHI_RELEASE_DISPLAY', 'yes'],
        ['SMOLOTCHI_RELEASE_CORE_NET', '1'],
        ['SMOLOTCHI_WEB_PORT', '8099'],
        ['SMOLOTCHI_DB', '/var/lib/smolotchi/events.db'],
        ['SMOLOTCHI_RELEASE_EXTRAS', 'ai, display'],
      ]),
    );
    expect(s).toMatchObject({ keep: 5, display: true, coreNet: true, webPort: 8099, extras: ['ai', 'display'] });
  });

  it('extras: unset means the defaults (null), empty means none; the profile and data settings parse', () => {
    expect(settingsFromEnv(new Map()).extras).toBeNull();
    expect(settingsFromEnv(new Map([['SMOLOTCHI_RELEASE_EXTRAS', '']])).extras).toEqual([]);
    const s = settingsFromEnv(
      new Map([
        ['SMOLOTCHI_RELEASE_PROFILE', 'pi'],
        ['SMOLOTCHI_DB', '/srv/smolotchi/app.db'],
        ['SMOLOTCHI_RELEASE_DATA_DBS', '/var/lib/smolotchi/ai.db, /var/lib/smolotchi/wifi.db'],
        ['SMOLOTCHI_RELEASE_DATA_SNAPSHOTS', 'no'],
      ]),
    );
    expect(s).toMatchObject({ profile: 'pi', appDb: '/srv/smolotchi/app.db', dataDbs: ['/var/lib/smolotchi/ai.db', '/var/lib/smolotchi/wifi.db'], dataSnapshots: false });
  });

  it.each([
    ['SMOLOTCHI_RELEASE_KEEP', '0'],
    ['SMOLOTCHI_RELEASE_KEEP', 'three'],
    ['SMOLOTCHI_RELEASE_DISPLAY', 'maybe'],
    ['SMOLOTCHI_WEB_PORT', '70000'],
    ['SMOLOTCHI_WEB_HOST', 'evil host;'],
    ['SMOLOTCHI_RELEASE_SOURCE', '--upload-pack=x'],
    ['SMOLOTCHI_RELEASE_PYTHON', 'python3'],
    ['SMOLOTCHI_RELEASE_REQUIREMENTS', '../../etc/shadow'],
    ['SMOLOTCHI_RELEASE_REQUIREMENTS', '/etc/shadow'],
    ['SMOLOTCHI_RELEASE_EXTRAS', '../x'],
    ['SMOLOTCHI_RELEASE_PROFILE', 'raspberry'],
    ['SMOLOTCHI_DB', 'events.db'],
    ['SMOLOTCHI_DB', '/var/lib/smolotchi/../../etc/shadow'],
    ['SMOLOTCHI_RELEASE_DATA_DBS', '/var/lib/smolotchi/'],
    ['SMOLOTCHI_RELEASE_KEPE', '3'],
  ])('refuses %s=%s naming the key (exit 2)', (key, value) => {
    expect(() => settingsFromEnv(new Map([[key, value]]))).toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining(key) }));
  });

  it('flags win over the file; a missing file means defaults', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-settings-'));
    try {
      expect(loadSettings(path.join(dir, 'absent'))).toEqual(DEFAULT_SETTINGS);
      writeFileSync(path.join(dir, 'env'), 'SMOLOTCHI_RELEASE_SETTLE_SECONDS=9\n');
      expect(loadSettings(path.join(dir, 'env')).settleSeconds).toBe(9);
      expect(loadSettings(path.join(dir, 'env'), { settleSeconds: 2 }).settleSeconds).toBe(2);
      expect(loadSettings(path.join(dir, 'env'), { settleSeconds: undefined }).settleSeconds).toBe(9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('property: arbitrary env-file text either parses or fails with a ReleaseError, never anything else', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.constantFrom('SMOLOTCHI_RELEASE_KEEP=', 'SMOLOTCHI_WEB_PORT=', '#', 'export ', '"', "'")), { maxLength: 12 }), (parts) => {
        const text = parts.join('');
        try {
          settingsFromEnv(parseEnvFile(text));
        } catch (err) {
          if (!(err instanceof ReleaseError) || err.exitCode !== 2) throw err;
        }
      }),
      { numRuns: 4000 },
    );
  });
});
