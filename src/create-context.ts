import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './core/package-root.js';
import { openHistory, openHistoryReadOnly } from './adapters/history-db.js';
import { seedHistory } from './core/history-seed.js';
import { makeNoServiceManager, makeSystemd, type ServiceManager } from './adapters/systemctl.js';
import type { Context } from './core/context.js';
import type { HistoryStore } from './core/history.js';
import { isDeviceRoot, makeLayout, type Layout } from './core/layout.js';
import { makeLogger, type Logger } from './core/log.js';
import { DEFAULT_SETTINGS, loadSettings, type Settings } from './core/settings.js';

export interface GlobalOptions {
  root?: string;
  systemctl?: string;
  quiet?: boolean;
  verbose?: boolean;
  /** Check every page of the history when it is opened for writing (`recover`): slow on a long history. */
  fullHistoryCheck?: boolean;
}

/** Which service manager: the one named, the host's when it runs systemd, else none (and why). */
function chooseServices(layout: Layout, systemctl: string | undefined): ServiceManager {
  // Under a sandbox root the tmpfiles config names device paths (the tool creates its run dirs
  // itself) and the host's journal says nothing about the sandbox's units.
  if (systemctl) return makeSystemd(isDeviceRoot(layout) ? { systemctl } : { systemctl, tmpfiles: null, journalctl: null });
  if (!isDeviceRoot(layout)) return makeNoServiceManager(`--root ${layout.root} is a sandbox and no --systemctl was given`);
  if (!existsSync('/run/systemd/system')) return makeNoServiceManager('systemd is not running on this machine (/run/systemd/system is missing)');
  return makeSystemd({});
}

/** The installed CLI, however it was invoked (bin symlink, node path, tests): units name it stably. */
function toolCommandLine(): string {
  return `${realpathSync(process.execPath)} ${path.join(packageRoot(), 'dist', 'src', 'cli.js')}`;
}

export function createContext(opts: GlobalOptions, overrides: Partial<Settings> = {}, env = process.env): Context {
  const layout = makeLayout(opts.root ?? env.SMOLOTCHI_ROOT ?? '/');
  const log: Logger = makeLogger({ quiet: opts.quiet, verbose: opts.verbose });
  // Probing the web UI only makes sense where the services really run; the env file may still ask for it.
  const base: Settings = isDeviceRoot(layout) ? DEFAULT_SETTINGS : { ...DEFAULT_SETTINGS, httpCheck: false };
  const settings = loadSettings(layout.envFile, overrides, base);
  let store: HistoryStore | null = null;
  let reader: HistoryStore | null | undefined;
  let readWarning: string | null = null;
  return {
    layout,
    settings,
    services: chooseServices(layout, opts.systemctl ?? env.SMOLOTCHI_SYSTEMCTL),
    log,
    toolCommand: toolCommandLine(),
    env,
    history() {
      if (!store) {
        // One connection per command: a reader opened earlier gives way to the writer.
        reader?.close();
        const opened = openHistory(layout.historyDb, log, { fullCheck: opts.fullHistoryCheck });
        store = opened.store;
        if (opened.rebuiltFrom) seedHistory(store, layout, log, opened.rebuiltFrom);
        readWarning = null; // the rebuild message says it all
      }
      return store;
    },
    readHistory() {
      if (store) return store;
      // Held back: a mutating command about to rebuild the file says so once, in its own words.
      if (reader === undefined) reader = openHistoryReadOnly(layout.historyDb, { ...log, warn: (m) => void (readWarning = m) });
      return reader;
    },
    close() {
      if (readWarning) log.warn(readWarning);
      store?.close();
      reader?.close();
    },
  };
}
