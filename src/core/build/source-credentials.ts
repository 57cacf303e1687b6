/**
 * Credentials in an http(s) source URL (`https://user:token@host/repo.git`), split off where the
 * source is parsed. Never lets them reach a message, the history, a JSON answer, the mirror's
 * config or a process's argv: only git's credential helper hands them out (see adapters/git-run.ts).
 */

import { inspect } from 'node:util';
import { UsageError } from '../errors.js';

/** What git's credential helper answers with, for this protocol and host only. */
export interface SourceAuth {
  protocol: 'http' | 'https';
  /** host[:port] as the URL wrote it (git's credential protocol names the host the same way). */
  host: string;
  username: string;
  password: string;
}

// Scheme and authority: the userinfo ends at the authority's last '@' (an unencoded '@' in a password is common).
const AUTHORITY = /^(https?):\/\/([^/?#]*)/i;

/**
 * `https://user:pw@host/x` -> url `https://host/x` and the credentials; any other source comes back
 * unchanged with none. ssh's `git@host` is a login name, not a secret, and stays in the URL.
 */
export function splitSourceCredentials(source: string): { url: string; auth: SourceAuth | null } {
  const m = AUTHORITY.exec(source);
  const at = m ? m[2]!.lastIndexOf('@') : -1;
  if (!m || at === -1) return { url: source, auth: null };
  const userinfo = m[2]!.slice(0, at);
  const host = m[2]!.slice(at + 1);
  const url = `${m[1]}://${host}${source.slice(m[0].length)}`;
  const colon = userinfo.indexOf(':');
  const username = decoded(colon === -1 ? userinfo : userinfo.slice(0, colon), url);
  const password = colon === -1 ? '' : decoded(userinfo.slice(colon + 1), url);
  if (username === '' && password === '') return { url, auth: null };
  return { url, auth: secret({ protocol: m[1]!.toLowerCase() as SourceAuth['protocol'], host, username, password }) };
}

function decoded(part: string, url: string): string {
  let text: string;
  try {
    text = decodeURIComponent(part);
  } catch {
    throw new UsageError(`the credentials in the source URL are not valid percent-encoding: ${url}`);
  }
  // A line break would add lines of its own to git's credential protocol (key=value per line).
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new UsageError(`the credentials in the source URL contain control characters: ${url}`);
  return text;
}

/** Credentials that print as a placeholder and drop out of JSON, should an object carrying them ever be shown. */
function secret(auth: SourceAuth): SourceAuth {
  Object.defineProperties(auth, {
    toJSON: { value: () => undefined, enumerable: false },
    [inspect.custom]: { value: () => '[credentials]', enumerable: false },
  });
  return auth;
}
