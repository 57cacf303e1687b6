/**
 * Ctrl-C and SIGTERM: outside a mutation stop at once, inside it wait for the next safe point.
 * Never stops a mutation between safe points; the next command's recovery finishes or undoes it.
 */

/**
 * Ctrl-C and SIGTERM. Outside a mutation the command just stops. While a mutation holds the lock,
 * the signal waits for the next safe point: the start of a journaled step (where a crash is
 * already provably recoverable, see the crash-safety tests) or a failed gate (so an interrupted
 * restart or check is never taken for the release's fault). There the lock is released and the
 * CLI exits 130/143; the next command's (or boot's) recovery finishes or undoes the deploy.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

export interface Interruption {
  /** The signal received, once one was. */
  readonly signal: StopSignal | null;
  request(signal: StopSignal): void;
  /** While guarded, a signal waits for a safe point; `cleanup` (the lock's release) runs before stopping. */
  guard(cleanup: () => void): () => void;
  /** Stop here if a signal came; `at` names the step for "interrupted at <step>". */
  safePoint(at: string): void;
}

/** `stop` never returns (the CLI exits); tests and library use get one that never fires. */
export function makeInterruption(stop: (signal: StopSignal, at: string | null) => void): Interruption {
  let signal: StopSignal | null = null;
  const cleanups = new Set<() => void>();
  const stopNow = (at: string | null) => {
    for (const cleanup of [...cleanups].reverse()) {
      try {
        cleanup();
      } catch {
        // stopping anyway: the next command takes over a dead holder's lock
      }
    }
    cleanups.clear();
    stop(signal!, at);
  };
  return {
    get signal() {
      return signal;
    },
    request(s) {
      if (signal) return; // a second Ctrl-C changes nothing: we are on our way to a safe point
      signal = s;
      if (cleanups.size === 0) stopNow(null);
    },
    guard(cleanup) {
      cleanups.add(cleanup);
      return () => void cleanups.delete(cleanup);
    },
    safePoint(at) {
      if (signal) stopNow(at);
    },
  };
}

export const neverInterrupted: Interruption = makeInterruption(() => {});
