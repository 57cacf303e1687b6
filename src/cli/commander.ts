/**
 * commander, loaded through require: what the CLI builds its program and its errors from.
 * Never used for anything but argv parsing and help.
 */

import { createRequire } from 'node:module';

/**
 * Required rather than imported: commander's ESM entry wraps its CommonJS files, which Node then
 * re-parses for named exports on every start of every command.
 */
const commander = createRequire(import.meta.url)('commander') as typeof import('commander');

// Each a value and a type, as with `import { Command } from 'commander'`.
export const { Command, CommanderError, InvalidArgumentError, Option } = commander;
export type Command = import('commander').Command;
export type CommanderError = import('commander').CommanderError;
export type InvalidArgumentError = import('commander').InvalidArgumentError;
export type Option = import('commander').Option;
