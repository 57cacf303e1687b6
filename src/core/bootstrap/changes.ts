/**
 * The record of one thing `release init` looked at and what it did about it.
 * A type only: init's steps fill it and render/init.ts shows it; it never acts.
 */

/** One thing `release init` looked at, and what it did about it. */
export interface InitChange {
  kind: 'user' | 'folder' | 'file' | 'unit';
  path: string;
  /** 'skipped': could not be done here (the detail says why); with --dry-run, what would happen. */
  action: 'created' | 'changed' | 'kept' | 'skipped';
  detail: string;
}
