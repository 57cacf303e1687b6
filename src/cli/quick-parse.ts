/**
 * The well-formed command line, read without commander: `release <command> [args] [--flags]`, each
 * flag one the command declares, spelt out in full, each value checked as commander would check it.
 * Anything else (help, the version, a mistake, a form it does not read) is left to commander, whose
 * help and errors are the CLI's. Loading and building commander costs every command ~10 ms, a rollback
 * a twentieth of its time; a test holds both parsers to the same result on every form this one reads.
 */

import type { CommandSpec } from './commands.js';
import { commandFlags, InvalidFlagValue, type CliOptions, type FlagSpec } from './flags.js';

/** A command line the quick parser read: the command, its positional arguments, its options. */
export interface QuickPick {
  spec: CommandSpec;
  args: string[];
  o: CliOptions;
}

interface Flag {
  spec: FlagSpec;
  /** commander's attribute name: `--dry-run` -> dryRun, `--no-color` -> color. */
  key: string;
  takesValue: boolean;
  negated: boolean;
}

const FLAG_SYNTAX = /^(?:-([A-Za-z]), )?--([a-z][a-z0-9-]*)( <[^>]+>)?$/;

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** The command's flags by every spelling it accepts (`--quiet`, `-q`). */
function flagTable(spec: CommandSpec): Map<string, Flag> {
  const table = new Map<string, Flag>();
  for (const f of commandFlags(spec)) {
    const m = FLAG_SYNTAX.exec(f.flags);
    if (!m) throw new Error(`flag spelt in a way the quick parser does not read: ${f.flags}`);
    const [, short, long, value] = m;
    const negated = long!.startsWith('no-');
    const flag = { spec: f, key: camelCase(negated ? long!.slice(3) : long!), takesValue: value !== undefined, negated };
    table.set(`--${long}`, flag);
    if (short) table.set(`-${short}`, flag);
  }
  return table;
}

/** How many positional arguments a command takes: its `<required>` ones, then its `[optional]` ones. */
function arity(spec: CommandSpec): { min: number; max: number } {
  const words = spec.args?.split(/\s+/).filter(Boolean) ?? [];
  return { min: words.filter((w) => w.startsWith('<')).length, max: words.length };
}

/**
 * The command, its arguments and options when argv (normalized, see normalizeArgv) is a form this
 * parser reads and commander would accept as it stands; null for anything else.
 */
export function quickParse(argv: string[], commands: CommandSpec[]): QuickPick | null {
  if (argv[2] !== 'release') return null;
  const spec = commands.find((c) => c.name === argv[3]);
  if (!spec) return null;
  const flags = flagTable(spec);
  const o: CliOptions = {};
  const args: string[] = [];
  const words = argv.slice(4);
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (!word.startsWith('-')) {
      args.push(word);
      continue;
    }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = flags.get(eq < 0 ? word : word.slice(0, eq));
    // Help, `--`, bundled short flags, a flag this command does not take: commander's to answer.
    if (!flag) return null;
    if (!flag.takesValue) {
      if (eq >= 0) return null;
      o[flag.key] = !flag.negated;
      continue;
    }
    const value = eq >= 0 ? word.slice(eq + 1) : words[++i];
    // A missing value, or one that looks like a flag: commander's rules for those are its own.
    if (value === undefined || value.startsWith('-')) return null;
    if (flag.spec.choices && !flag.spec.choices.includes(value)) return null;
    try {
      o[flag.key] = flag.spec.parse ? flag.spec.parse(value) : value;
    } catch (err) {
      if (err instanceof InvalidFlagValue) return null;
      throw err;
    }
  }
  const { min, max } = arity(spec);
  if (args.length < min || args.length > max) return null;
  for (const flag of new Set(flags.values())) if (flag.spec.required && o[flag.key] === undefined) return null;
  // As commander's optsWithGlobals: colour is on unless --no-color was given.
  o.color = o.color !== false;
  return { spec, args, o };
}
