/**
 * Journaled step names as an operator reads them in the progress output.
 * Never renames a journaled step: recovery relies on those words; only the shown label changes.
 */

/**
 * Journaled step names (the history's words, kept stable for recovery) as an operator reads them.
 * Steps whose work is shown by finer steps (the venv build, the restarts, the gate) show nothing
 * themselves; a name not listed shows as it is, so a new journaled step appears without work here.
 */
const LABELS: Record<string, string | null> = {
  fetch: 'fetch',
  promote: 'promote to releases/',
  venv: null,
  stamp: 'stamp (sync, completion stamp)',
  'render-units': 'units: render',
  'write-units': 'units: write',
  'stop-removed-units': 'units: stop the removed ones',
  'daemon-reload': 'units: daemon-reload, enable',
  'units-unchanged': 'units: unchanged (no rewrite, no daemon-reload)',
  flip: 'switch current',
  restart: null,
  'health-gate': null,
  mark: 'mark good',
  'auto-rollback': 'roll back',
  deactivate: 'remove units and current',
  prune: 'prune',
};

/** The label to show for a step, or null when its finer steps tell the story. */
export function stepLabel(name: string): string | null {
  if (name in LABELS) return LABELS[name]!;
  const removal = /^remove (.+)$/.exec(name);
  return removal ? `prune: remove ${removal[1]}` : name;
}
