#!/bin/bash
# systemd-sandbox: boot a real systemd (PID 1) inside private pid/mount/net/uts/ipc namespaces, so
# the e2e suite can install units, daemon-reload, restart and health-check services for real,
# without touching the host's services, network, cgroups, /tmp or /var/tmp. Adapted from the
# team's recipe.
#
#   systemd-sandbox.sh start DIR          boot; prints the init's host PID (also in DIR/pid)
#   systemd-sandbox.sh exec DIR -- CMD... run CMD inside (same paths, same systemd), in $PWD
#   systemd-sandbox.sh stop DIR           SIGKILL the init (by PID), wait, remove its cgroups
#
# Inside, these paths are private bind mounts of folders under DIR/fs, so a tool run inside uses
# the production paths unchanged (the host side stays readable for the tests):
#   /opt/smolotchi /var/lib/smolotchi /var/cache/smolotchi /etc/smolotchi /etc/systemd/system
#   /etc/tmpfiles.d
# /run, /tmp and /var/tmp are fresh tmpfs. Paths listed in SANDBOX_KEEP (colon-separated; e.g.
# the repo checkout, node) and DIR itself stay visible even when they live under /tmp or /var/tmp.
# Loopback is up; a 'smolotchi' user and group exist (private copies of /etc/passwd, /etc/group,
# ...). systemd runs in its own cgroup subtree (DIR's name), so two sandboxes never share a
# unit's cgroup.
# Needs root, unshare, nsenter.
set -euo pipefail

die() { echo "systemd-sandbox: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root"
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: systemd-sandbox.sh start|exec|stop DIR [-- CMD...]"
SYSTEMD=${SYSTEMD_BIN:-/lib/systemd/systemd}

# Units that would change the host's kernel, users, clock or /tmp if this systemd ran them.
MASKED="systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service
systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer systemd-sysctl.service
systemd-modules-load.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
proc-sys-fs-binfmt_misc.mount systemd-remount-fs.service systemd-sysusers.service
systemd-journal-flush.service systemd-update-utmp.service systemd-random-seed.service
systemd-firstboot.service systemd-machine-id-commit.service ldconfig.service
systemd-hwdb-update.service systemd-udevd.service systemd-udev-trigger.service
systemd-udev-settle.service systemd-journal-catalog-update.service
systemd-update-done.service systemd-pstore.service systemd-boot-system-token.service
systemd-fsck-root.service systemd-timesyncd.service systemd-networkd.service
systemd-resolved.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer
fstrim.timer man-db.timer logrotate.timer dpkg-db-backup.timer"

PRIVATE="opt/smolotchi var/lib/smolotchi var/cache/smolotchi etc/smolotchi etc/systemd/system etc/tmpfiles.d"

# Named after DIR's parent too: fleet-sandbox devices are FLEET/dev1, FLEET/dev2..., and two fleets
# at once (a test and the bench, two checkouts) must not share a cgroup (nor wait on each other's
# cgroup at stop).
cgroup_name() { echo "smolotchi-sandbox-$(basename "$(dirname "$1")")-$(basename "$1")"; }

inner() { # runs inside the new namespaces, then becomes PID 1
  local d=$1 cg k
  # Own cgroup subtree: systemd takes the cgroup it starts in as its root.
  cg=$(cgroup_name "$d")
  local hs="/sys/fs/cgroup/systemd /sys/fs/cgroup/unified"  # v1/hybrid; else unified v2
  [ -e /sys/fs/cgroup/systemd/cgroup.procs ] || hs=/sys/fs/cgroup
  for h in $hs; do
    [ -e "$h/cgroup.procs" ] && mkdir -p "$h/$cg" && echo 0 > "$h/$cg/cgroup.procs"
  done
  mount -t tmpfs -o mode=755 tmpfs /run
  for p in $PRIVATE; do
    mkdir -p "$d/fs/$p" "/$p"
    mount --bind "$d/fs/$p" "/$p"
  done
  for f in passwd group shadow gshadow; do
    [ -e "/etc/$f" ] && mount --bind "$d/users/$f" "/etc/$f"
  done
  # Private /tmp and /var/tmp (services' PrivateTmp= folders land there and a killed sandbox
  # never removes them); re-expose DIR and the SANDBOX_KEEP paths that live under them.
  for t in /tmp /var/tmp; do
    mkdir -p /run/.host-tmp && mount --bind "$t" /run/.host-tmp
    mount -t tmpfs -o mode=1777 tmpfs "$t"
    for k in "$d" ${SANDBOX_KEEP//:/ }; do
      case "$k" in
        "$t"/*) mkdir -p "$k"; mount --bind "/run/.host-tmp/${k#"$t"/}" "$k" ;;
      esac
    done
    umount -l /run/.host-tmp && rmdir /run/.host-tmp
  done
  ip link set lo up 2>/dev/null || true
  export SYSTEMD_UNIT_PATH="$d/units:"
  exec "$SYSTEMD" --system --unit=sandbox.target --log-target=console --log-level=notice
}

init_pid() { # the host PID of the sandbox's systemd: the process that exec'd it under unshare
  local p=$1 c
  for _ in 1 2 3; do
    c=$(pgrep -P "$p" -n 2>/dev/null) || return 1
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && { echo "$c"; return 0; }
    p=$c
  done
  return 1
}

case "$cmd" in
  start)
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    [ -e "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && die "already running: $(cat "$dir/pid")"
    mkdir -p "$dir/units" "$dir/users" "$dir/fs"
    for u in $MASKED; do ln -sfn /dev/null "$dir/units/$u"; done
    printf "[Unit]\nDescription=systemd-sandbox\nWants=systemd-journald.socket systemd-journald.service\n" > "$dir/units/sandbox.target"
    for f in passwd group shadow gshadow; do [ -e "/etc/$f" ] && cp "/etc/$f" "$dir/users/$f"; done
    # A 'smolotchi' system user, on an id free on this host.
    id=990; while cut -d: -f3 "$dir/users/passwd" "$dir/users/group" | grep -qx "$id"; do id=$((id - 1)); done
    grep -q '^smolotchi:' "$dir/users/group" || echo "smolotchi:x:$id:" >> "$dir/users/group"
    gid=$(grep '^smolotchi:' "$dir/users/group" | cut -d: -f3)
    grep -q '^smolotchi:' "$dir/users/passwd" || \
      echo "smolotchi:x:$id:$gid:smolotchi:/var/lib/smolotchi:/usr/sbin/nologin" >> "$dir/users/passwd"
    if [ -e "$dir/users/shadow" ] && ! grep -q '^smolotchi:' "$dir/users/shadow"; then echo 'smolotchi:!:19000::::::' >> "$dir/users/shadow"; fi
    if [ -e "$dir/users/gshadow" ] && ! grep -q '^smolotchi:' "$dir/users/gshadow"; then echo 'smolotchi:!::' >> "$dir/users/gshadow"; fi
    export -f inner cgroup_name; export MASKED PRIVATE SYSTEMD SANDBOX_KEEP="${SANDBOX_KEEP:-}"
    setsid unshare --pid --fork --kill-child --mount --propagation private --mount-proc \
      --net --uts --ipc bash -c 'inner "$0"' "$dir" </dev/null >"$dir/boot.log" 2>&1 &
    outer=$!
    for _ in $(seq 1 150); do
      if pid=$(init_pid "$outer"); then
        state=$(nsenter -t "$pid" -p -m -n systemctl is-system-running 2>/dev/null || true)
        if [ "$state" = running ] || [ "$state" = degraded ]; then
          echo "$pid" > "$dir/pid"; echo "$pid"; exit 0
        fi
      fi
      kill -0 "$outer" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$outer" 2>/dev/null || true
    die "systemd did not come up; see $dir/boot.log" ;;
  exec)
    shift 2; [ "${1:-}" = "--" ] && shift
    pid=$(cat "$dir/pid" 2>/dev/null) || die "not running (no $dir/pid)"
    exec nsenter -t "$pid" -p -m -n -u -i --wd="$PWD" -- "$@" ;;
  stop)
    dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
    if pid=$(cat "$dir/pid" 2>/dev/null); then
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$dir/pid"
    fi
    # Empty cgroups are left behind by the kill; remove them leaves first (they may take a moment).
    cg=$(cgroup_name "$dir")
    for _ in $(seq 1 20); do
      left=0
      for h in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
        [ -d "$h" ] || continue
        find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || left=1
      done
      [ "$left" = 0 ] && break
      sleep 0.2
    done ;;
  *) die "unknown command: $cmd" ;;
esac
