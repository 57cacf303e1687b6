import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A systemd that answers at once (every unit active, no restarts): the bench times our work, not a
 * fake's start-up, and the crash suites run hundreds of commands. `show` answers one block per unit
 * with its Id, as systemd does. With `log`, every call's argv is appended to that file first. With
 * `unitDir`, `enable` and `disable` make and remove the WantedBy= links there as systemctl does, so
 * that a deploy finds its units enabled the way it would on a device.
 */
export function writeQuickSystemctl(dir: string, log?: string, unitDir?: string): string {
  const file = path.join(dir, 'systemctl');
  const unit = 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nResult=success\\nNRestarts=0\\nMainPID=4242\\nExecMainCode=0\\nExecMainStatus=0\\n';
  const links = unitDir
    ? [
        `  enable) for u in $units; do [ -f '${unitDir}'/"$u" ] || continue; for t in $(sed -n 's/^WantedBy=//p' '${unitDir}'/"$u"); do`,
        `      mkdir -p '${unitDir}'/"$t.wants" && ln -sfn /etc/systemd/system/"$u" '${unitDir}'/"$t.wants/$u"; done; done ;;`,
        `  disable) for u in $units; do rm -f '${unitDir}'/*.wants/"$u"; done ;;`,
      ]
    : [];
  const script = [
    '#!/bin/sh',
    ...(log ? [`printf '%s\\n' "$*" >> '${log}'`] : []),
    'verb=; units=; dashes=',
    'for a in "$@"; do',
    '  if [ -n "$dashes" ]; then units="$units $a"; continue; fi',
    '  case "$a" in --) dashes=1 ;; -*) ;; *) if [ -z "$verb" ]; then verb=$a; else units="$units $a"; fi ;; esac',
    'done',
    'case "$verb" in',
    `  show) for u in $units; do printf 'Id=%s\\n${unit}\\n' "$u"; done ;;`,
    '  is-active) for u in $units; do echo active; done ;;',
    ...links,
    'esac',
    'exit 0',
  ];
  writeFileSync(file, script.join('\n') + '\n');
  chmodSync(file, 0o755);
  return file;
}
