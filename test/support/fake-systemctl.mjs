#!/usr/bin/env node
// A recording FAKE systemctl for unit and integration tests only (the e2e suite uses the real one).
// Every call appends its argv as one JSON line to $FAKE_SYSTEMCTL_LOG. `show` answers from
// $FAKE_SYSTEMCTL_STATE, a JSON file { "<unit>": { "ActiveState": "...", "NRestarts": 3, ... } };
// a unit with "failRestart": true makes `restart` and `start` fail the way systemctl does;
// "startLimitHit": true refuses them for the unit's start limit (Result=start-limit-hit) until a
// `reset-failed` of that unit clears it.
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const argv = process.argv.slice(2);
if (process.env.FAKE_SYSTEMCTL_LOG) appendFileSync(process.env.FAKE_SYSTEMCTL_LOG, JSON.stringify(argv) + '\n');

let state = {};
try {
  state = JSON.parse(readFileSync(process.env.FAKE_SYSTEMCTL_STATE ?? '', 'utf8'));
} catch {
  // No state file: every unit is loaded, active and running.
}

const DEFAULTS = {
  LoadState: 'loaded',
  ActiveState: 'active',
  SubState: 'running',
  Result: 'success',
  NRestarts: 0,
  MainPID: 4242,
  ExecMainCode: 0,
  ExecMainStatus: 0,
};

const properties = [];
const positional = [];
let afterDashes = false;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (afterDashes || !a.startsWith('-')) positional.push(a);
  else if (a === '--') afterDashes = true;
  else if (a.startsWith('--property=')) properties.push(...a.slice('--property='.length).split(','));
  else if (a === '-p' || a === '--property') properties.push(...(argv[++i] ?? '').split(','));
}
const [verb, ...units] = positional;
// "NRestartsIncrement": true makes the restart counter climb on every query, like systemd
// restarting a crash-looping unit; the count is kept in a file beside the state.
function restartCounter(unit) {
  const file = `${process.env.FAKE_SYSTEMCTL_STATE}.${unit}.restarts`;
  let n = 0;
  try {
    n = Number(readFileSync(file, 'utf8')) || 0;
  } catch {}
  writeFileSync(file, String(n + 1));
  return n + 1;
}

// "busDownShows": N makes the next N `show` calls for that unit fail as if systemd were out of
// reach (an environment fault, not the unit's), counted in a file beside the state.
function busDown(unit) {
  const wanted = Number((state[unit] ?? {}).busDownShows ?? 0);
  if (!wanted) return false;
  const file = `${process.env.FAKE_SYSTEMCTL_STATE}.${unit}.busdown`;
  let n = 0;
  try {
    n = Number(readFileSync(file, 'utf8')) || 0;
  } catch {}
  if (n >= wanted) return false;
  writeFileSync(file, String(n + 1));
  return true;
}

const unitState = (unit) => {
  const s = { Id: unit, ...DEFAULTS, ...(state[unit] ?? {}) };
  if (s.NRestartsIncrement) s.NRestarts = restartCounter(unit);
  if (s.startLimitHit) s.Result = 'start-limit-hit';
  return s;
};
const HIDDEN = ['failRestart', 'NRestartsIncrement', 'busDownShows', 'startLimitHit'];

switch (verb) {
  case 'show':
    if (units.some(busDown)) {
      process.stderr.write('Failed to connect to bus: Connection refused\n');
      process.exit(1);
    }
    for (const unit of units) {
      const s = unitState(unit);
      const keys = properties.length ? properties : Object.keys(s).filter((k) => !HIDDEN.includes(k));
      for (const key of keys) process.stdout.write(`${key}=${s[key] ?? ''}\n`);
      if (units.length > 1) process.stdout.write('\n');
    }
    break;
  case 'restart':
  case 'start': {
    // Like systemctl: every job runs, each failed one is reported, then the call fails.
    const failed = units.filter((unit) => unitState(unit).startLimitHit || unitState(unit).failRestart);
    for (const unit of failed) {
      const limited = unitState(unit).startLimitHit;
      // systemctl explains a failed job only for a service; any other unit's is a bare line.
      if (!unit.endsWith('.service')) {
        process.stderr.write('Job failed. See "journalctl -xe" for details.\n');
        continue;
      }
      process.stderr.write(
        `Job for ${unit} failed because ${limited ? 'start of the service was attempted too often' : 'the control process exited with error code'}.\n` +
          `See "systemctl status ${unit}" and "journalctl -xeu ${unit}" for details.\n` +
          (limited ? `To force a start use "systemctl reset-failed ${unit}"\nfollowed by "systemctl start ${unit}" again.\n` : ''),
      );
    }
    if (failed.length > 0) process.exit(1);
    break;
  }
  case 'reset-failed': {
    const file = process.env.FAKE_SYSTEMCTL_STATE;
    if (!file) break;
    for (const unit of units) if (state[unit]) delete state[unit].startLimitHit;
    // Replace, never rewrite in place, as the test side does.
    writeFileSync(`${file}.reset.tmp`, JSON.stringify(state, null, 2) + '\n');
    renameSync(`${file}.reset.tmp`, file);
    break;
  }
  case 'is-active': {
    const states = units.map((u) => unitState(u).ActiveState);
    process.stdout.write(states.join('\n') + '\n');
    process.exit(states.every((s) => s === 'active') ? 0 : 3);
  }
  default:
    // daemon-reload, stop, enable, disable, ...: recorded, nothing else to do.
    break;
}
