/**
 * Builds the Context of one run: layout, settings, service manager, logger, progress, history.
 * Never opens the history or resolves the service user before a command first asks for them.
 */

import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { ENTRY_POINT_FILE, packageRoot } from './core/package-root.js';
import { openToolHistory, readToolHistory } from './core/state/tool-history.js';
import { resolveServiceIdentity, type ServiceIdentity } from './adapters/service-user.js';
import { makeNoServiceManager, makeSystemd, type ServiceManager } from './adapters/systemctl.js';
import type { Context } from './core/context.js';
import type { HistoryStore } from './core/state/history.js';
import { isDeviceRoot, makeLayout, type Layout } from './core/layout.js';
import { makeLogger, type Logger } from './core/log.js';
import { neverInterrupted, type Interruption } from './core/state/interrupt.js';
import type { Progress } from './core/progress.js';
import { colorWanted } from './render/color.js';
import { makeProgress, progressMode } from './render/progress.js';
import { DEFAULT_SETTINGS, loadSettings, type Settings } from './core/settings.js';
import { checkRoot, checkSystemctl } from './cli/preconditions.js';

export interface GlobalOptions {
  root?: string;
  systemctl?: string;
  quiet?: boolean;
  verbose?: boolean;
  /** Check every page of the history when it is opened for writing (`recover`): slow on a long history. */
  fullHistoryCheck?: boolean;
  /** false for --no-color. */
  color?: boolean;
  interrupt?: Interruption;
}

/** Progress on stderr: a live line on a terminal, timestamped lines elsewhere, nothing when quiet. */
function stderrProgress(opts: GlobalOptions, env: NodeJS.ProcessEnv): Progress {
  const err = process.stderr;
  return makeProgress({
    mode: progressMode(err, env, opts.quiet),
    verbose: Boolean(opts.verbose),
    color: colorWanted(err, env, opts.color),
    write: (text) => void err.write(text),
    columns: err.columns,
  });
}

/** Which service manager: the one named, the host's when it runs systemd, else none (and why). */
function chooseServices(layout: Layout, systemctl: string | undefined, progress: Progress, log: Logger): ServiceManager {
  // --verbose shows every systemctl call, as the operator would type it.
  const onCall = (argv: string[]) => progress.output(`$ ${argv.join(' ')}`);
  const onWarn = (message: string) => log.warn(message);
  // Under a sandbox root the tmpfiles config names device paths (the tool creates its run dirs
  // itself) and the host's journal says nothing about the sandbox's units.
  if (systemctl) return makeSystemd(isDeviceRoot(layout) ? { systemctl, onCall, onWarn } : { systemctl, tmpfiles: null, journalctl: null, onCall, onWarn });
  if (!isDeviceRoot(layout)) return makeNoServiceManager(`--root ${layout.root} is a sandbox and no --systemctl was given`);
  if (!existsSync('/run/systemd/system')) return makeNoServiceManager('systemd is not running on this machine (/run/systemd/system is missing)');
  return makeSystemd({ onCall, onWarn });
}

/**
 * The command the boot-time unit runs. An installed package says it in its `entry-point` file
 * (the .deb: /usr/bin/smolotchi), so moving node or the package never breaks boot recovery; a
 * checkout (tests, the demo) names this node and this cli.js.
 */
export function toolCommandLine(root = packageRoot()): string {
  try {
    const entry = readFileSync(path.join(root, ENTRY_POINT_FILE), 'utf8').trim();
    if (entry) return entry;
  } catch {
    // no entry-point file: a checkout
  }
  return `${realpathSync(process.execPath)} ${path.join(root, 'dist', 'src', 'cli.js')}`;
}

export function createContext(opts: GlobalOptions, overrides: Partial<Settings> = {}, env = process.env): Context {
  const root = opts.root ?? env.SMOLOTCHI_ROOT ?? '/';
  checkRoot(root, opts.root !== undefined ? '--root' : 'SMOLOTCHI_ROOT');
  const systemctl = opts.systemctl ?? env.SMOLOTCHI_SYSTEMCTL;
  if (systemctl !== undefined) checkSystemctl(systemctl, opts.systemctl !== undefined ? '--systemctl' : 'SMOLOTCHI_SYSTEMCTL', env);
  const layout = makeLayout(root);
  const progress = stderrProgress(opts, env);
  const log: Logger = makeLogger({ quiet: opts.quiet, verbose: opts.verbose, write: (line) => progress.print(line) });
  // Probing the web UI only makes sense where the services really run; the env file may still ask for it.
  const base: Settings = isDeviceRoot(layout) ? DEFAULT_SETTINGS : { ...DEFAULT_SETTINGS, httpCheck: false };
  const settings = loadSettings(layout.envFile, overrides, base, env);
  let store: HistoryStore | null = null;
  let reader: HistoryStore | null | undefined;
  let readWarning: string | null = null;
  let identity: ServiceIdentity | undefined;
  return {
    layout,
    settings,
    services: chooseServices(layout, systemctl, progress, log),
    log,
    progress,
    interrupt: opts.interrupt ?? neverInterrupted,
    toolCommand: toolCommandLine(),
    env,
    serviceIdentity() {
      if (!identity) {
        identity = resolveServiceIdentity({ deviceRoot: isDeviceRoot(layout), env });
        log.debug(`release code runs as ${identity.name} (uid ${identity.uid}): ${identity.reason}`);
      }
      return identity;
    },
    history() {
      if (!store) {
        // One connection per command: a reader opened earlier gives way to the writer.
        reader?.close();
        store = openToolHistory(layout, log, { fullCheck: opts.fullHistoryCheck });
        readWarning = null; // the rebuild message says it all
      }
      return store;
    },
    readHistory() {
      if (store) return store;
      // Held back: a mutating command about to rebuild the file says so once, in its own words.
      if (reader === undefined) reader = readToolHistory(layout, { ...log, warn: (m) => void (readWarning = m) });
      return reader;
    },
    close() {
      if (readWarning) log.warn(readWarning);
      progress.close();
      store?.close();
      reader?.close();
    },
  };
}
