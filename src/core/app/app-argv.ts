/**
 * Splits argv between the tool's own `release ...` commands and the app's commands.
 * Never reads past the app's command word: from there on every argument is the app's.
 */

/**
 * `smolotchi release ...` (and help, --help, --version) is the tool's; any other first word is a
 * command of the app (`status`, `prune`, `health`, `db migrate`, `ai`), passed to the current
 * release. Only `--root DIR` may come before it: everything from the app's command on is the app's.
 */
export interface AppInvocation {
  root: string | undefined;
  argv: string[];
}

const OURS = new Set(['release', 'help']);

export function appInvocation(args: string[]): AppInvocation | null {
  let root: string | undefined;
  let i = 0;
  while (i < args.length) {
    const arg = args[i]!;
    if (arg === '--root' && i + 1 < args.length) {
      root = args[i + 1];
      i += 2;
    } else if (arg.startsWith('--root=')) {
      root = arg.slice('--root='.length);
      i += 1;
    } else break;
  }
  const command = args[i];
  if (command === undefined || command.startsWith('-') || OURS.has(command)) return null;
  return { root, argv: args.slice(i) };
}
