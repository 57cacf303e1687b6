/**
 * Whether a source string names a git repository or a folder of tarballs.
 * Never asks the network when the text decides; an unclear http(s) URL is asked once, quietly.
 */

import { statSync, readdirSync } from 'node:fs';
import type { SourceKind, SourceKindSetting } from '../settings.js';
import type { SourceAuth } from './source-credentials.js';

export type { SourceKind, SourceKindSetting } from '../settings.js';

/**
 * Which kind of source an operator's string names. The text decides when it can: `git+https://`
 * and `--source-kind` force a kind, `.git` at the end of a URL, ssh/git/file URLs and `host:path`
 * are git, a local folder holding smolotchi-<ver>.tar.gz is a tarball folder. An http(s) URL that
 * says nothing is asked once, quietly (`git ls-remote`, short timeout, the scrubbed git env):
 * a git server answers, a static folder of archives does not.
 */

const ARCHIVE_NAME = /^smolotchi-.+\.tar\.gz$/;
const HTTP = /^https?:\/\//i;

/** `git+https://host/x` -> `https://host/x` (pip's spelling of "this URL is a git repository"). */
const withoutGitPlus = (source: string): string => source.replace(/^git\+(?=[a-z]+:\/\/)/i, '');

function isTarballFolder(source: string): boolean {
  try {
    return statSync(source).isDirectory() && readdirSync(source).some((n) => ARCHIVE_NAME.test(n));
  } catch {
    return false;
  }
}

/** The kind the text alone tells (null: an http(s) URL to ask), and the source as git or fetch take it. */
export function kindFromText(source: string, setting: SourceKindSetting = 'auto'): { kind: SourceKind | null; source: string } {
  const plain = withoutGitPlus(source);
  if (setting !== 'auto') return { kind: setting, source: plain };
  if (plain !== source) return { kind: 'git', source: plain };
  if (HTTP.test(source)) return { kind: /\.git\/?$/i.test(new URL(source).pathname) ? 'git' : null, source };
  return { kind: isTarballFolder(source) ? 'tarball' : 'git', source };
}

/** The kind of a source: from its text, else by asking the URL whether it speaks git. */
export async function detectSourceKind(source: string, setting: SourceKindSetting = 'auto', auth: SourceAuth | null = null): Promise<{ kind: SourceKind; source: string }> {
  const told = kindFromText(source, setting);
  if (told.kind !== null) return { kind: told.kind, source: told.source };
  // Loaded here, not at the top: read-only commands never spawn git.
  const { answersGit } = await import('../../adapters/git.js');
  return { kind: (await answersGit(told.source, undefined, auth)) ? 'git' : 'tarball', source: told.source };
}
