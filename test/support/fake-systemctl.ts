import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FakeSystemctl {
  /** An executable that runs the fake with this instance's log and state: pass it as `systemctl`. */
  path: string;
  /** Every call so far, as argv arrays. */
  log(): string[][];
  /** Merge properties (ActiveState, NRestarts, failRestart, ...) into a unit's state. */
  setState(unit: string, partial: Record<string, unknown>): void;
}

const FAKE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake-systemctl.mjs');
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * A wrapper script carries the log and state paths, so nothing depends on process.env of the test
 * worker and several fakes can live side by side.
 */
export function makeFakeSystemctl(dir: string): FakeSystemctl {
  const logFile = path.join(dir, 'fake-systemctl.log');
  const stateFile = path.join(dir, 'fake-systemctl.state.json');
  const wrapper = path.join(dir, 'systemctl');
  writeFileSync(logFile, '');
  writeFileSync(stateFile, '{}\n');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nFAKE_SYSTEMCTL_LOG=${quote(logFile)} FAKE_SYSTEMCTL_STATE=${quote(stateFile)} exec ${quote(process.execPath)} ${quote(FAKE)} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return {
    path: wrapper,
    log: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as string[]),
    setState(unit, partial) {
      const state = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, Record<string, unknown>>;
      state[unit] = { ...state[unit], ...partial };
      // Replace, never rewrite in place: a concurrent `show` must not read half a file.
      writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + '\n');
      renameSync(`${stateFile}.tmp`, stateFile);
    },
  };
}
