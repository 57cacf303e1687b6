/**
 * A dry run's questions to the source: which version `latest` is, whether it exists, its commit.
 * Never changes anything: no mirror sync, no download, nothing written.
 */

import { lsRemoteTags } from '../../adapters/git.js';
import type { Context } from '../context.js';
import { IntegrityError, NotFoundError } from '../errors.js';
import type { InstallRequest, ParsedRequest } from './fetch.js';
import { listTarballVersions, tarballAvailable } from './sources/tarball.js';
import { nearestHint, versionsFromTags } from './sources/git.js';
import { latestStable } from '../version.js';
import { exists } from '../fsutil.js';

export async function probeRequest(_ctx: Context, req: ParsedRequest): Promise<InstallRequest & { commit?: string }> {
  if (req.kind === 'file') {
    if (!(await exists(req.source))) throw new NotFoundError(`no such archive: ${req.source}`);
    return { ...req, version: req.version! };
  }
  if (req.kind === 'tarball') {
    if (req.version === null) {
      const latest = latestStable(await listTarballVersions(req.source));
      if (!latest) throw new NotFoundError(`no released version found in ${req.source}`);
      return { ...req, version: latest };
    }
    if (!(await tarballAvailable(req.source, req.version))) throw new NotFoundError(`no smolotchi-${req.version}.tar.gz in ${req.source}`);
    return { ...req, version: req.version };
  }
  const tags = await lsRemoteTags(req.source, undefined, req.auth);
  const available = versionsFromTags(tags.keys());
  const version = req.version ?? latestStable(available);
  if (version === null) throw new NotFoundError(`no release version tagged in git source ${req.source}`, 'tags must look like v1.2.3 or 1.2.3');
  const prefixed = tags.get(`v${version}`);
  const bare = tags.get(version);
  if (prefixed && bare && prefixed !== bare) {
    throw new IntegrityError(`ambiguous version ${version}: tags v${version} and ${version} differ`, 'delete or fix one of the two tags in the source repository');
  }
  const commit = prefixed ?? bare;
  if (!commit) throw new NotFoundError(`version ${version} is not tagged in git source ${req.source}`, nearestHint(version, available));
  return { ...req, version, commit };
}
