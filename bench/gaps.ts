import type { Poll } from '../scripts/web-poller.js';

/** What a client polling the web UI saw during one operation. */
export interface Downtime {
  /** Longest time between two answers (ms); an answer is a 200 with a version. */
  longestGapMs: number;
  polls: number;
  /** Requests without an answer (refused, reset, timed out, 5xx...). */
  failed: number;
  /** Answers from a version outside the expected old/new pair, with their count. */
  unexpected: Record<string, number>;
  /** Answers that went back to the old version after the new one had answered. */
  backwards: number;
  /** Whether the last request was answered (if not, the gap runs to the end of polling). */
  servingAtEnd: boolean;
}

export function downtime(polls: Poll[], from: string, to: string): Downtime {
  let longestGapMs = 0;
  let lastAnswer: number | null = null;
  let failed = 0;
  let backwards = 0;
  let seenNew = false;
  const unexpected: Record<string, number> = {};
  for (const p of polls) {
    if (p.version === null) {
      failed++;
      continue;
    }
    if (lastAnswer !== null) longestGapMs = Math.max(longestGapMs, p.endMs - lastAnswer);
    lastAnswer = p.endMs;
    if (p.version === to) seenNew = true;
    else if (p.version === from) backwards += seenNew ? 1 : 0;
    else unexpected[p.version] = (unexpected[p.version] ?? 0) + 1;
  }
  const last = polls.at(-1);
  const servingAtEnd = last?.version != null;
  if (last && lastAnswer !== null && !servingAtEnd) longestGapMs = Math.max(longestGapMs, last.endMs - lastAnswer);
  return { longestGapMs, polls: polls.length, failed, unexpected, backwards, servingAtEnd };
}

/** The first answer from one of `versions` at or after `sinceMs`. */
export function firstAnswerAfter(polls: Poll[], sinceMs: number, versions: string[]): Poll | undefined {
  return polls.find((p) => p.startMs >= sinceMs && p.version !== null && versions.includes(p.version));
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
