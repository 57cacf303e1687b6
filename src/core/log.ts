/**
 * The logger: info, warnings and --verbose details on stderr, control characters escaped.
 * Never writes to stdout (data only), and never logs errors: they are thrown.
 */

import { escapeControl } from '../render/escape.js';

/** Progress and diagnostics go to stderr; stdout is reserved for data (tables, JSON). */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

export interface LoggerOptions {
  quiet?: boolean;
  verbose?: boolean;
  write?: (line: string) => void;
}

export function makeLogger(options: LoggerOptions = {}): Logger {
  const out = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  // Messages quote release output and history text: never a raw control character on the terminal.
  const write = (line: string) => out(escapeControl(line));
  return {
    info: (m) => {
      if (!options.quiet) write(m);
    },
    // --quiet means errors only; errors are thrown, never logged.
    warn: (m) => {
      if (!options.quiet) write(`warning: ${m}`);
    },
    debug: (m) => {
      if (options.verbose) write(`debug: ${m}`);
    },
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, debug() {} };
