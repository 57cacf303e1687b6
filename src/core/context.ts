/**
 * What a command may use of the outside world, built once by src/create-context.ts or a test.
 * A type only: it never opens, spawns or reads anything itself.
 */

import type { ServiceIdentity } from '../adapters/service-user.js';
import type { ServiceManager } from '../adapters/systemctl.js';
import type { HistoryStore } from './state/history.js';
import type { Interruption } from './state/interrupt.js';
import type { Layout } from './layout.js';
import type { Logger } from './log.js';
import type { Progress } from './progress.js';
import type { Settings } from './settings.js';

/** Everything a command needs from the outside world, built once by the CLI (or a test). */
export interface Context {
  layout: Layout;
  settings: Settings;
  services: ServiceManager;
  log: Logger;
  /** Step-by-step progress on stderr (journaled steps report themselves). */
  progress: Progress;
  /** Ctrl-C/SIGTERM: mutations stop only at safe points. */
  interrupt: Interruption;
  /** Absolute command line of this tool, for the boot-time check unit. */
  toolCommand: string;
  env: NodeJS.ProcessEnv;
  /** Who runs release code (smoke import, pip, health check): resolved on first use, never root. */
  serviceIdentity(): ServiceIdentity;
  /** History for mutating commands: created and migrated on first use. */
  history(): HistoryStore;
  /** History for read-only commands: null when absent or unreadable (the filesystem still answers). */
  readHistory(): HistoryStore | null;
  close(): void;
}
