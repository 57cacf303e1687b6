/**
 * Colour for a person at a terminal: whether to paint, the paint functions, visible widths.
 * Never colours a pipe, TERM=dumb, NO_COLOR or --no-color (FORCE_COLOR aside).
 */

/** Colour only for a person at a terminal; NO_COLOR and --no-color win, FORCE_COLOR forces it. */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, flag: boolean | undefined): boolean {
  if (flag === false || (env.NO_COLOR ?? '') !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

export interface Paint {
  good(s: string): string;
  bad(s: string): string;
  warn(s: string): string;
  dim(s: string): string;
}

const sgr = (code: number, reset: number) => (s: string) => `\x1b[${code}m${s}\x1b[${reset}m`;
const plain = (s: string) => s;

export function paint(enabled: boolean): Paint {
  if (!enabled) return { good: plain, bad: plain, warn: plain, dim: plain };
  return { good: sgr(32, 39), bad: sgr(31, 39), warn: sgr(33, 39), dim: sgr(2, 22) };
}

/** Visible width of a string that may hold colour codes (tables pad by it). */
export function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}
