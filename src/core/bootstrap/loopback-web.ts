/**
 * The release's config.toml with the web UI bound to loopback, for the first-install seed.
 * Its own module so the TOML parser loads only when a config is seeded, not on every install.
 */

import { parse, stringify } from 'smol-toml';

export const SAFE_WEB_HOST = '127.0.0.1';

/**
 * The app ships its web UI bound to 0.0.0.0; its deploy page says to open the LAN only on purpose.
 * The real app reads [ui].host; a [web] table with a host (older layouts, our fixtures) is forced too.
 */
export function withLoopbackWeb(text: string): string {
  const doc = parse(text) as Record<string, unknown>;
  const table = (name: string) => (typeof doc[name] === 'object' && doc[name] !== null && !Array.isArray(doc[name]) ? (doc[name] as Record<string, unknown>) : null);
  doc.ui = { ...(table('ui') ?? {}), host: SAFE_WEB_HOST };
  const web = table('web');
  if (web && 'host' in web) web.host = SAFE_WEB_HOST;
  return stringify(doc);
}
