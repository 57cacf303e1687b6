/**
 * Seeds /etc/smolotchi/config.toml from the release's own on a first install, web on loopback.
 * Never touches an existing config file, even an empty one: it is the operator's.
 */

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from '../layout.js';
import type { Logger } from '../log.js';
import { readAccount } from '../state/accounts.js';
import { createOnce, pathExists } from './create-once.js';

/** The app's config on the device: the operator's file once it exists. */
export const configFile = (layout: Layout): string => path.join(layout.etcDir, 'config.toml');

const MAX_CONFIG_BYTES = 1024 * 1024;

export type SeedOutcome = { seeded: true; from: string } | { seeded: false; reason: string };

/** Read the release's config.toml without following a link out of the release, with a size cap. */
async function readReleaseConfig(file: string): Promise<string | null> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!handle) return null;
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > MAX_CONFIG_BYTES) return null;
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * On the first install, copy the release's config.toml to /etc/smolotchi/config.toml when that
 * file is missing, as the app's own deploy flow does, with the web bind forced to loopback.
 * An existing file (even an empty one) is the operator's and is never touched.
 */
export async function seedConfig(layout: Layout, releaseDir: string, version: string, log: Logger): Promise<SeedOutcome> {
  const target = configFile(layout);
  if (await pathExists(target)) return { seeded: false, reason: 'exists' };
  const text = await readReleaseConfig(path.join(releaseDir, 'config.toml'));
  if (text === null) return { seeded: false, reason: `release ${version} ships no config.toml` };
  // The TOML parser loads only for a seed: every later install finds the operator's file.
  const { withLoopbackWeb, SAFE_WEB_HOST } = await import('./loopback-web.js');
  let body: string;
  try {
    body = withLoopbackWeb(text);
  } catch (err) {
    log.warn(`${target} not seeded: release ${version}'s config.toml is not valid TOML (${(err as Error).message.split('\n')[0]})`);
    return { seeded: false, reason: 'invalid TOML' };
  }
  const header = [
    `# Seeded by smolotchi-release from release ${version}'s config.toml, with the web UI bound to`,
    `# ${SAFE_WEB_HOST} (set [ui] host = "0.0.0.0" to serve the LAN on purpose). Yours to edit: never rewritten.`,
    '',
  ].join('\n');
  // It may hold Wi-Fi credentials: root's, readable by the app's group only.
  const service = await readAccount(layout.root);
  const created = await createOnce(target, header + body.trimEnd() + '\n', 0o640, service?.gid);
  if (!created) return { seeded: false, reason: 'exists' };
  return { seeded: true, from: version };
}
