/**
 * Shows progress on stderr: a live line on a terminal, timestamped plain lines elsewhere.
 * Never writes to stdout (data only) nor decides what a step is: commands report, this shows.
 */

import type { Progress } from '../core/progress.js';
import { paint, type Paint } from './color.js';
import { stepLabel } from './step-labels.js';

export type ProgressMode = 'live' | 'plain' | 'quiet';

export interface ProgressOptions {
  mode: ProgressMode;
  verbose: boolean;
  color: boolean;
  write: (text: string) => void;
  /** Terminal width for the live line (it must never wrap, or it cannot be redrawn). */
  columns?: number;
}

/** A terminal gets the live line; a pipe, a file or systemd's journal (JOURNAL_STREAM) plain lines. */
export function progressMode(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, quiet: boolean | undefined): ProgressMode {
  if (quiet) return 'quiet';
  if (!stream.isTTY || env.JOURNAL_STREAM || env.TERM === 'dumb') return 'plain';
  return 'live';
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR = '\r\x1b[2K';
// Plain mode: a step still running after this long says so, so a slow pip never means silence.
const SLOW_STEP_MS = 2000;

const clock = () => new Date().toTimeString().slice(0, 8);
const elapsed = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

interface Open {
  label: string | null;
  name: string;
  started: number;
  detail: string;
  countdownUntil: number | null;
  announced: boolean;
}

/** Steps as lines: `✓ fetch 1.2s` (live line while it runs) or `08:01:02 fetch: done in 1.2s`. */
export function makeProgress(o: ProgressOptions): Progress {
  const p: Paint = paint(o.color);
  let open: Open | null = null;
  let frame = 0;
  let timer: NodeJS.Timeout | null = null;
  let liveShown = false;

  const liveText = (s: Open): string => {
    const now = Date.now();
    const countdown = s.countdownUntil === null ? '' : ` · ${Math.max(0, Math.ceil((s.countdownUntil - now) / 1000))} s left`;
    const detail = s.detail ? ` · ${s.detail}` : '';
    const time = elapsed(now - s.started);
    // Never wrap: a wrapped line cannot be redrawn in place. Colour codes are added after cutting.
    const room = (o.columns || 80) - time.length - 2;
    const body = `${SPINNER[frame % SPINNER.length]} ${s.label}${detail}${countdown}`;
    return `${body.length > room ? `${body.slice(0, Math.max(0, room - 1))}…` : body} ${p.dim(time)}`;
  };
  const draw = () => {
    if (o.mode !== 'live' || !open?.label) return;
    o.write(CLEAR + liveText(open));
    liveShown = true;
  };
  const clearLive = () => {
    if (liveShown) o.write(CLEAR);
    liveShown = false;
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  const end = (ok: boolean) => {
    const s = open;
    open = null;
    stopTimer();
    if (!s?.label || o.mode === 'quiet') return clearLive();
    const took = elapsed(Date.now() - s.started);
    if (o.mode === 'live') {
      clearLive();
      o.write(`${ok ? p.good('✓') : p.bad('✗')} ${s.label} ${p.dim(took)}\n`);
    } else {
      o.write(`${clock()} ${s.label}: ${ok ? 'done' : 'FAILED'} in ${took}\n`);
    }
  };

  return {
    step(name, opts) {
      if (open) end(true);
      const label = stepLabel(name);
      const countdownUntil = opts?.countdownSeconds ? Date.now() + opts.countdownSeconds * 1000 : null;
      open = { label, name, started: Date.now(), detail: '', countdownUntil, announced: false };
      if (!label || o.mode === 'quiet') return;
      const mine = open;
      if (o.mode === 'live') {
        draw();
        timer = setInterval(() => (frame++, draw()), 100);
      } else {
        timer = setTimeout(() => {
          if (open !== mine) return;
          mine.announced = true;
          o.write(`${clock()} ${label}${mine.countdownUntil ? '' : ' ...'}\n`);
        }, mine.countdownUntil ? 0 : SLOW_STEP_MS);
      }
      timer.unref();
    },
    detail(text) {
      if (open) open.detail = text;
    },
    done: () => end(true),
    fail: () => end(false),
    output(line) {
      if (!o.verbose || o.mode === 'quiet') return;
      this.print(o.mode === 'plain' ? line : p.dim(`  ${line}`));
    },
    print(line) {
      clearLive();
      o.write(`${o.mode === 'plain' ? `${clock()} ` : ''}${line}\n`);
      draw();
    },
    get current() {
      return open?.name ?? null;
    },
    close() {
      stopTimer();
      clearLive();
      open = null;
    },
  };
}
