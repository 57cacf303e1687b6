/**
 * The only module that calls systemctl, journalctl and systemd-tmpfiles, each with a timeout.
 * Never blames a unit when systemd itself is out of reach (SystemdError says environmental).
 */

import { ProcessError, run, runAllowingFailure, tailLines } from './process.js';

export interface UnitState {
  unit: string;
  loadState: string;
  activeState: string;
  subState: string;
  result: string;
  nRestarts: number;
  mainPid: number;
  /** Exit status of the main process; null while it has not exited. */
  execMainStatus: number | null;
}

export interface ServiceManager {
  readonly kind: 'systemd' | 'none';
  /** Why service steps are skipped (kind 'none'). */
  readonly reason?: string;
  daemonReload(): Promise<void>;
  /**
   * Restart units in one call: one systemd transaction, which orders them by their After= and
   * waits for every job. A failure names the units whose jobs failed (SystemdError.failedUnits).
   * Units refused only for their start limit are reset and restarted once more.
   */
  restart(units: string[]): Promise<void>;
  start(unit: string): Promise<void>;
  stop(units: string[]): Promise<void>;
  enable(units: string[]): Promise<void>;
  disable(units: string[]): Promise<void>;
  show(unit: string): Promise<UnitState>;
  /** The state of several units in one call, in the order asked. */
  showAll(units: string[]): Promise<UnitState[]>;
  journal(unit: string, lines: number): Promise<string[]>;
  tmpfilesCreate(confPath: string): Promise<void>;
}

export interface SystemdOptions {
  systemctl?: string;
  /** null: no journal to read (a --root sandbox: the host's journal is not the sandbox's). */
  journalctl?: string | null;
  /** null: do not run systemd-tmpfiles (a --root sandbox: its config names device paths). */
  tmpfiles?: string | null;
  /** How long a start/restart job may take: for Type=notify that is until READY=1 (or the unit's own timeout). */
  jobTimeoutMs?: number;
  /** Told every command line before it runs (--verbose prints them). */
  onCall?: (argv: string[]) => void;
  /** Told what an operator should know although the call succeeded (a start limit reset). */
  onWarn?: (message: string) => void;
}

/**
 * systemd could not be asked (no bus, not booted with systemd, no permission, a full or read-only
 * disk under it), as opposed to a unit failing its job: the first is never the release's fault.
 */
const UNREACHABLE = /Failed to connect to bus|not been booted with systemd|D-Bus connection|Access denied|authentication required|Transport endpoint|Connection refused|Connection timed out|Permission denied|Read-only file system|No space left/i;

/** A failed systemctl call; `environmental` when the fault lies with the host, not with a unit. */
export class SystemdError extends ProcessError {
  constructor(
    argv: string[],
    exitCode: number | undefined,
    signal: string | undefined,
    stderrTail: string,
    what: string,
    readonly environmental: boolean,
    /** The units systemctl said failed their job ("Job for X failed", "Failed to restart X: ..."). */
    readonly failedUnits: string[] = [],
    /** A job failed that systemctl did not name: a unit that is no service (a timer) says only "Job failed.". */
    readonly unnamedFailure = false,
  ) {
    super(argv, exitCode, signal, stderrTail, what);
  }
}

/** The units a failed start/restart names: one line per failed job, in the order systemd reported them. */
export function failedJobUnits(stderr: string): string[] {
  const named = [...stderr.matchAll(/^(?:Job for (\S+) failed|Failed to (?:re)?start (\S+?):)/gm)].map((m) => (m[1] ?? m[2])!);
  return [...new Set(named)];
}

/** Did a job fail without systemctl naming its unit? */
export const unnamedJobFailure = (stderr: string): boolean => /^Job failed\./m.test(stderr);

const PROPERTIES = ['LoadState', 'ActiveState', 'SubState', 'Result', 'NRestarts', 'MainPID', 'ExecMainCode', 'ExecMainStatus'];
const QUICK_MS = 60_000;
// Beyond systemd's default 90 s start timeout, so systemd (not we) decides a slow start failed.
const JOB_MS = 180_000;

/**
 * systemctl's stderr ends with a "See systemctl status ..." pointer (and, for a start limit, a
 * "To force a start use ... followed by ..." hint); the line before them says why.
 */
function reason(stderr: string): string {
  return tailLines(
    stderr
      .split('\n')
      .filter((l) => !/^(See ["']?(systemctl status|journalctl)|To force a start use |followed by ["']?systemctl start)/.test(l.trim()))
      .join('\n'),
    4,
  );
}

export function parseShow(unit: string, stdout: string): UnitState {
  const props = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const int = (key: string) => {
    const n = Number.parseInt(props.get(key) ?? '', 10);
    return Number.isFinite(n) ? n : 0;
  };
  // ExecMainCode is the CLD_* code of the main process's end; 0 means it has not ended.
  const exited = int('ExecMainCode') !== 0 && props.has('ExecMainStatus');
  return {
    unit,
    loadState: props.get('LoadState') ?? 'unknown',
    activeState: props.get('ActiveState') ?? 'unknown',
    subState: props.get('SubState') ?? 'unknown',
    result: props.get('Result') ?? 'unknown',
    nRestarts: int('NRestarts'),
    mainPid: int('MainPID'),
    execMainStatus: exited ? int('ExecMainStatus') : null,
  };
}

/** `systemctl show a b` prints one record per unit, separated by an empty line. */
export function splitShowBlocks(stdout: string): string[] {
  return stdout.split(/\n[ \t]*\n/).filter((b) => b.trim() !== '');
}

const idOf = (block: string): string | undefined => /^Id=(.*)$/m.exec(block)?.[1]?.trim();

/** What systemd sets on a unit whose start it refused because of StartLimitBurst/IntervalSec. */
const START_LIMIT_HIT = 'start-limit-hit';

export function makeSystemd(options: SystemdOptions = {}): ServiceManager {
  const systemctl = options.systemctl ?? 'systemctl';
  const journalctl = options.journalctl === undefined ? 'journalctl' : options.journalctl;
  const tmpfiles = options.tmpfiles === undefined ? 'systemd-tmpfiles' : options.tmpfiles;
  const jobMs = options.jobTimeoutMs ?? JOB_MS;

  /** Run one systemctl verb; `tolerate` names stderr lines that mean the goal is already reached. */
  async function ctl(verb: string, units: string[], timeoutMs: number, tolerate?: RegExp, flags: string[] = []): Promise<string> {
    // '--' so that a unit name can never be read as an option.
    const args = ['--no-ask-password', ...flags, verb, ...(units.length ? ['--', ...units] : [])];
    const what = `systemctl ${verb} ${units.join(' ')}`.trim();
    let r: Awaited<ReturnType<typeof runAllowingFailure>>;
    options.onCall?.([systemctl, ...args]);
    try {
      r = await runAllowingFailure(systemctl, args, { timeoutMs });
    } catch (err) {
      // It did not even start (missing, not executable): the host's fault, whatever the verb.
      if (err instanceof ProcessError) throw new SystemdError(err.argv, undefined, undefined, err.stderrTail, what, true);
      throw err;
    }
    if (r.exitCode === 0) return r.stdout;
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    if (tolerate && lines.length > 0 && lines.every((l) => tolerate.test(l))) return r.stdout;
    // Only a unit's own job (start/restart) can fail because of the release; the rest is systemd's plumbing.
    const environmental = !(verb === 'restart' || verb === 'start') || UNREACHABLE.test(r.stderr);
    throw new SystemdError([systemctl, ...args], r.signal ? undefined : r.exitCode, r.signal, reason(r.stderr || r.stdout), what, environmental, failedJobUnits(r.stderr), unnamedJobFailure(r.stderr));
  }

  /**
   * The units of a failed start or restart call that systemd refused only for their start limit, when no
   * other job of the call failed otherwise; else none. Our (re)start is an operator's act, which the
   * limit is not meant to stop.
   */
  async function refusedByStartLimit(err: unknown, units: string[]): Promise<string[]> {
    if (!(err instanceof SystemdError) || err.environmental) return [];
    // A job systemctl did not name (a timer's) could be any unit of the call: all are asked then.
    const asked = err.unnamedFailure ? units : err.failedUnits;
    if (asked.length === 0) return [];
    // Decided by the Result property, not by systemctl's English words; when in doubt, no retry.
    const stdout = await ctl('show', asked, QUICK_MS, undefined, ['--property=Id,Result']).catch(() => '');
    const results = new Map(splitShowBlocks(stdout).map((b) => parseShow(idOf(b) ?? '', b)).map((u) => [u.unit, u.result]));
    const limited = asked.filter((u) => results.get(u) === START_LIMIT_HIT);
    // A job started anew resets its unit's Result: anything but success there failed in this call.
    const failedOtherwise = asked.some((u) => results.get(u) !== START_LIMIT_HIT && (err.failedUnits.includes(u) || results.get(u) !== 'success'));
    return failedOtherwise ? [] : limited;
  }

  /** Start or restart the units; a refusal for the start limit alone is reset and tried once more. */
  async function startJobs(verb: 'start' | 'restart', units: string[]): Promise<void> {
    try {
      await ctl(verb, units, jobMs * units.length);
    } catch (err) {
      const limited = await refusedByStartLimit(err, units);
      if (limited.length === 0) throw err;
      // Once only, and only these units: a release that crash-loops into its limit again fails the
      // retry or the health gate, as before.
      options.onWarn?.(`start limit hit for ${limited.join(', ')} (started too often recently): reset it (systemctl reset-failed) and ${verb}ing once more`);
      await ctl('reset-failed', limited, QUICK_MS);
      await ctl(verb, limited, jobMs * limited.length);
    }
  }

  return {
    kind: 'systemd',
    async daemonReload() {
      await ctl('daemon-reload', [], QUICK_MS);
    },
    // Blocks until the job is done, i.e. READY=1 for Type=notify: the health gate starts from there.
    // Each job may take its own full time: a chain (web after core) waits for both, one after the other.
    async restart(units) {
      if (units.length) await startJobs('restart', units);
    },
    async start(unit) {
      await startJobs('start', [unit]);
    },
    // Stopping or disabling a unit that is already gone has reached its goal.
    async stop(units) {
      if (units.length) await ctl('stop', units, jobMs, /not loaded|does not exist|not found/i);
    },
    async enable(units) {
      if (units.length) await ctl('enable', units, QUICK_MS);
    },
    async disable(units) {
      if (units.length) await ctl('disable', units, QUICK_MS, /not loaded|does not exist|not found/i);
    },
    async show(unit) {
      const stdout = await ctl('show', [unit], QUICK_MS, undefined, [`--property=${PROPERTIES.join(',')}`]);
      return parseShow(unit, stdout);
    },
    // One systemctl for the whole gate round (each spawn costs more than systemd's answer).
    async showAll(units) {
      if (units.length <= 1) return Promise.all(units.map((u) => this.show(u)));
      const stdout = await ctl('show', units, QUICK_MS, undefined, [`--property=Id,${PROPERTIES.join(',')}`]);
      const blocks = splitShowBlocks(stdout);
      // systemctl answers in the order asked; anything else (a missing or renamed record) is
      // asked unit by unit rather than guessed at.
      if (blocks.length !== units.length || blocks.some((b, i) => idOf(b) !== units[i])) return Promise.all(units.map((u) => this.show(u)));
      return units.map((u, i) => parseShow(u, blocks[i]!));
    },
    async journal(unit, lines) {
      if (journalctl === null) return [];
      // Only ever used to explain a failure: a missing or failing journalctl must not hide the real error.
      try {
        const r = await runAllowingFailure(journalctl, ['--no-pager', '--quiet', '--output=cat', `--lines=${lines}`, `--unit=${unit}`], { timeoutMs: 15_000 });
        return r.exitCode === 0 ? r.stdout.split('\n').filter((l) => l.length > 0) : [];
      } catch {
        return [];
      }
    },
    async tmpfilesCreate(confPath) {
      if (tmpfiles === null) return;
      await run(tmpfiles, ['--create', '--', confPath], { timeoutMs: QUICK_MS }, `systemd-tmpfiles --create ${confPath}`);
    },
  };
}

export function makeNoServiceManager(reason: string): ServiceManager {
  const nothing = async () => {};
  return {
    kind: 'none',
    reason,
    daemonReload: nothing,
    restart: nothing,
    start: nothing,
    stop: nothing,
    enable: nothing,
    disable: nothing,
    async show(unit) {
      return { unit, loadState: 'unknown', activeState: 'unknown', subState: 'unknown', result: 'unknown', nRestarts: 0, mainPid: 0, execMainStatus: null };
    },
    async showAll(units) {
      return Promise.all(units.map((u) => this.show(u)));
    },
    async journal() {
      return [];
    },
    tmpfilesCreate: nothing,
  };
}
