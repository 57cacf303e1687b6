/**
 * What a command is doing right now, reported for the operator (stderr).
 * Never decides how it looks (src/render/progress.ts does), and never writes to stdout.
 */

/**
 * What a command is doing right now, for the operator (stderr; never stdout, which is data).
 * Commands and the pipeline report; src/render/progress.ts decides how it looks (a live line on a
 * terminal, timestamped plain lines in a pipe or the journal, nothing under --quiet).
 */
export interface Progress {
  /** A step starts; the step before it, if still open, ends as done. */
  step(label: string, opts?: { countdownSeconds?: number }): void;
  /** What the current step is on right now (a pip package): shown on a terminal only. */
  detail(text: string): void;
  /** The current step ends: ok, or failed (the reason itself is the result's or the error's to say). */
  done(): void;
  fail(): void;
  /** A child's own output line (pip, a systemctl call): shown under --verbose only. */
  output(line: string): void;
  /** A line that must not tear the live line: info and warnings of the logger go through here. */
  print(line: string): void;
  /** The open step's label, for "interrupted at <step>". */
  readonly current: string | null;
  /** Stop drawing (end of the command). */
  close(): void;
}

export function silentProgress(): Progress {
  let current: string | null = null;
  return {
    step: (label) => void (current = label),
    detail() {},
    done: () => void (current = null),
    fail: () => void (current = null),
    output() {},
    print: (line) => void process.stderr.write(line + '\n'),
    get current() {
      return current;
    },
    close() {},
  };
}

/** The step of restarting units in one call, as the progress shows it: `restart core`, `restart ai, web, prune.timer`. */
export function restartStep(units: string[]): string {
  return `restart ${units.map((u) => u.replace(/^smolotchi-/, '').replace(/\.service$/, '')).join(', ')}`;
}
