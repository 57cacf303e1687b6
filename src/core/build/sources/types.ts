/**
 * What a source hands back after filling a staging folder with a release tree.
 * A type only: a source fills staging and never releases/ (build-release promotes).
 */

import type { SignedArtifact } from '../../trust/signed-artifact.js';

/** What a source hands back after filling a staging folder with a release tree. */
export interface FetchedRelease {
  version: string;
  kind: 'git' | 'tarball';
  /** Where it came from, as the user named it (URL, path or file). */
  source: string;
  /** git sources: the commit the tag pointed at. */
  commit?: string;
  /** tarball sources: sha256 of the verified archive. */
  sha256?: string;
  /** Bytes written into staging (for preflight checks and the history). */
  bytes?: number;
  /** tarball sources on a device with keys: the verified manifest and signature. */
  signed?: SignedArtifact;
  /** sha256 of the recorded file list (.smolotchi-files.json), set once staging is complete. */
  filesHash?: string;
}
