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
}
