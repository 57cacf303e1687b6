/**
 * The text of a fresh /etc/smolotchi/env: every setting commented out at its default.
 * Never drifts from the settings table: keys come from it and a test parses each default back.
 */

import { APP_SETTING_KEYS, RELEASE_SETTING_KEYS } from '../settings.js';

/**
 * What `release init` writes into /etc/smolotchi/env: every setting, commented out at its default.
 * The keys come from the settings table itself and a test parses each default back through its
 * parser, so the file cannot drift from what the tool really reads.
 */
export interface SettingDoc {
  /** The value the tool uses when the key is absent, as it would be written in the file ('' = none). */
  default: string;
  help: string;
  /** The default is computed when the key is unset (not a value one could write): `default` is an example. */
  computed?: true;
}

export const SETTING_DOCS: Record<string, SettingDoc> = {
  SMOLOTCHI_RELEASE_SOURCE: { default: '', help: 'git URL/path or tarball folder/URL used when --source is not given (credentials in an https URL: chmod 600 this file)' },
  SMOLOTCHI_RELEASE_SOURCE_KIND: { default: 'auto', help: 'git, tarball or auto (from the source text, else asking an http(s) URL whether it speaks git)' },
  SMOLOTCHI_RELEASE_KEEP: { default: '3', help: 'releases kept by prune (current, last good and rollback target are always kept)' },
  SMOLOTCHI_RELEASE_DISPLAY: { default: '0', help: 'enable the opt-in smolotchi-display unit' },
  SMOLOTCHI_RELEASE_CORE_NET: { default: '0', help: 'run smolotchi-core-net (CAP_NET_ADMIN) instead of smolotchi-core' },
  SMOLOTCHI_RELEASE_PYTHON: { default: '/usr/bin/python3', help: 'base interpreter of the venvs (the system one: services cannot reach /root or /home)' },
  SMOLOTCHI_RELEASE_REQUIREMENTS: { default: '', help: 'extra requirement files, relative to the release, comma separated' },
  SMOLOTCHI_RELEASE_EXTRAS: {
    default: 'web,core',
    computed: true,
    help: "pyproject extras to install, comma separated; unset: web,core (+display with the display unit), those the release has; empty: none",
  },
  SMOLOTCHI_RELEASE_PROFILE: { default: 'auto', help: 'device profile: pi adds requirements/pi_zero.txt, generic does not, auto is pi on ARM Raspberry Pi hardware' },
  SMOLOTCHI_RELEASE_DATA_DBS: { default: '', help: "more app databases snapshotted before every switch (absolute paths, comma separated)" },
  SMOLOTCHI_RELEASE_DATA_SNAPSHOTS: { default: '1', help: "snapshot the app's databases before every switch and restore them when a gate fails" },
  SMOLOTCHI_RELEASE_SETTLE_SECONDS: { default: '5', help: 'health gate: how long units must stay up with no restart' },
  SMOLOTCHI_RELEASE_START_TIMEOUT: { default: '60', help: 'health gate: how long units may take to become active' },
  SMOLOTCHI_RELEASE_HTTP_TIMEOUT: { default: '20', help: 'health gate: how long the web UI may take to answer' },
  SMOLOTCHI_RELEASE_HEALTH_CHECK_TIMEOUT: { default: '30', help: "health gate: limit for the release's packaging/health-check" },
  SMOLOTCHI_RELEASE_HTTP_CHECK: { default: '1', help: 'probe the web UI in the health gate' },
  SMOLOTCHI_WEB_HOST: { default: '127.0.0.1', help: "the app's web UI address (the units default to loopback; set 0.0.0.0 to serve the LAN on purpose)" },
  SMOLOTCHI_WEB_PORT: { default: '8080', help: "the app's web UI port" },
  SMOLOTCHI_DB: { default: '/var/lib/smolotchi/events.db', help: "the app's database (the release tool snapshots it before every switch)" },
};

/** Every key the tool reads, in the order of the settings table. */
export function documentedKeys(): string[] {
  return [...RELEASE_SETTING_KEYS(), ...APP_SETTING_KEYS()];
}

/** The text of a fresh /etc/smolotchi/env. A key without a doc line is a bug the tests catch. */
export function envFileTemplate(): string {
  const lines = [
    '# /etc/smolotchi/env: settings of smolotchi-release and of the smolotchi app (KEY=VALUE, read by',
    '# the tool and by the units\' EnvironmentFile=). Every setting is shown commented out at its',
    '# default; uncomment a line to change it. Command-line flags win over this file.',
    '# Written once by `smolotchi release init`; yours to edit: the tool never rewrites it.',
  ];
  for (const key of documentedKeys()) {
    const doc = SETTING_DOCS[key];
    if (!doc) throw new Error(`setting ${key} has no entry in SETTING_DOCS`);
    lines.push('', `# ${doc.help}`, `#${key}=${doc.default}`);
  }
  return lines.join('\n') + '\n';
}
