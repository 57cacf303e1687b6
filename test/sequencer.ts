import { statSync } from 'node:fs';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Starts the long suites first, so the two workers finish together instead of one running a
 * 5-minute kill-point file alone at the end. On a fresh clone vitest has no durations yet and
 * would start the largest files first, which are not the slowest: crash and fleet files are short
 * but run hundreds of commands. Order: crash, fleet, e2e, integration, the rest; larger first.
 */
const FOLDER_ORDER = ['test/crash/', 'test/fleet/', 'test/e2e/', 'test/integration/'];

const rank = (spec: TestSpecification) => {
  const i = FOLDER_ORDER.findIndex((folder) => spec.moduleId.includes(`/${folder}`));
  return i === -1 ? FOLDER_ORDER.length : i;
};
const size = (spec: TestSpecification) => statSync(spec.moduleId).size;

export default class LongSuitesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => rank(a) - rank(b) || size(b) - size(a));
  }
}
