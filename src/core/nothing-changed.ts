/**
 * The error of a step that failed before anything the running system sees had changed.
 * Never thrown after a visible change: the caller fails cleanly instead of rolling back.
 */

import { ReleaseError } from './errors.js';

/**
 * A step failed before it changed anything the running system sees (the disk filled while unit
 * files were being staged, say): the caller fails cleanly instead of rolling back what never moved.
 */
export class NothingChangedError extends ReleaseError {
  constructor(
    message: string,
    readonly reason: unknown,
    hint?: string,
  ) {
    super(message, undefined, hint);
  }
}
