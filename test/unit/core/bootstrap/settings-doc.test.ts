import { describe, expect, it } from 'vitest';
import { SETTING_DOCS, documentedKeys, envFileTemplate } from '../../../../src/core/bootstrap/settings-doc.js';
import { withLoopbackWeb } from '../../../../src/core/bootstrap/loopback-web.js';
import { DEFAULT_SETTINGS, parseEnvFile, settingsFromEnv } from '../../../../src/core/settings.js';
import { parse } from 'smol-toml';

describe('the env file template', () => {
  it('documents every key the tool reads, and nothing else', () => {
    expect(Object.keys(SETTING_DOCS).sort()).toEqual([...documentedKeys()].sort());
    const text = envFileTemplate();
    for (const key of documentedKeys()) expect(text).toMatch(new RegExp(`^#${key}=`, 'm'));
  });

  it('shows the real defaults: uncommenting every line changes no setting', () => {
    const computed = documentedKeys().filter((k) => SETTING_DOCS[k]!.computed);
    const uncommented = envFileTemplate().replace(/^#(SMOLOTCHI_[A-Z_]+)=/gm, (line, key: string) => (computed.includes(key) ? line : `${key}=`));
    expect(settingsFromEnv(parseEnvFile(uncommented))).toEqual(DEFAULT_SETTINGS);
    // A computed default stays commented out: unset is what selects it.
    for (const key of computed) expect(parseEnvFile(uncommented).has(key)).toBe(false);
    // As written (all commented out) it is read as no setting at all.
    expect(parseEnvFile(envFileTemplate()).size).toBe(0);
  });
});

describe('the seeded config', () => {
  it('forces the web bind to loopback and keeps everything else', () => {
    const out = parse(withLoopbackWeb('[ui]\nhost = "0.0.0.0"\nport = 8080\n[wifi]\niface = "wlan0"\n')) as Record<string, Record<string, unknown>>;
    expect(out.ui).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(out.wifi).toEqual({ iface: 'wlan0' });
  });

  it('adds the bind when the release says nothing (the app would otherwise pick its own default)', () => {
    const out = parse(withLoopbackWeb('[core]\ntick = 1\n')) as Record<string, Record<string, unknown>>;
    expect(out.ui).toEqual({ host: '127.0.0.1' });
  });
});
