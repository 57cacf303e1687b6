"""Filters of the smolotchi_release role: the one place that reads the tool's JSON.

Each device answers `smolotchi release <command> --json` with a result object (or, for a refused
command, {"error": {"message", "exitCode", "hint"}}) and a documented exit code. These filters turn
that answer into a verdict Ansible can act on, and the `status` answers into one fleet report, so
the playbooks never parse JSON field by field and a renamed field is fixed here only. One more
filter compares a device folder's `find` answer with the controller's files, so a copy task only
handles the files that need it.
"""

import hashlib
import json
import os

# Documented exit codes of smolotchi (README "Exit codes").
EXIT_OK = 0
EXIT_ROLLED_BACK = 5
EXIT_DEGRADED = 6


def _answer(result):
    """The JSON object a command printed, or {} when it printed none (crash, ssh trouble)."""
    text = (result or {}).get("stdout") or ""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _first(obj, *names):
    """The first present field among `names` (tolerates a field renamed between tool versions)."""
    for name in names:
        if isinstance(obj, dict) and obj.get(name) is not None:
            return obj[name]
    return None


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _error_message(answer, result):
    error = answer.get("error")
    message = _first(error, "message") if isinstance(error, dict) else None
    return message or _first(answer, "failure", "reason") or _last_line(result.get("stderr")) or _last_line(result.get("msg")) or "no output"


def verdict(result, command="install"):
    """Judge one host's `install` or `rollback` answer.

    Returns {ok, changed, rc, status, version, previous, reason}: rc 0 is ok (changed unless the
    release was already current); 5 (the device rolled itself back), 6 (degraded) and any other
    code fail the host, with the reason taken from the JSON so the play's output says why.
    """
    result = result or {}
    if result.get("skipped"):
        return {"ok": True, "changed": False, "rc": None, "status": "skipped", "version": None, "previous": None, "reason": "skipped"}
    answer = _answer(result)
    rc = result.get("rc")
    status = _first(answer, "status", "outcome")
    version = _first(answer, "version", "to")
    previous = _first(answer, "previous", "from", "fromVersion")
    out = {"ok": False, "changed": False, "rc": rc, "status": status, "version": version, "previous": previous, "reason": ""}
    if rc == EXIT_OK and answer and "error" not in answer:
        out["ok"] = True
        out["changed"] = status not in ("already-current", "dry-run")
        out["reason"] = "%s %s" % (status or "ok", version or "")
        return out
    failure = _error_message(answer, result)
    if rc == EXIT_ROLLED_BACK and command == "install":
        back = _first(answer, "rolledBackTo", "rolledBack", "restored") or "nothing (first install: units removed)"
        out["reason"] = "exit 5: %s failed its health gate; the device rolled itself back to %s: %s" % (version, back, failure)
    elif rc == EXIT_ROLLED_BACK:
        out["reason"] = "exit 5: the rollback to %s failed its health gate; the device went back to %s: %s" % (version, previous, failure)
    elif rc == EXIT_DEGRADED:
        out["reason"] = "exit 6: DEGRADED, a human is needed (smolotchi release status): %s" % failure
    elif rc is None:
        out["reason"] = "no exit code: %s" % failure
    else:
        out["reason"] = "exit %s: %s" % (rc, failure)
    return out


def init_changed(result):
    """Whether `release init --json` changed the device: an item it created or put right (it
    converges, so a second run only keeps or skips)."""
    changes = _answer(result).get("changes")
    if not isinstance(changes, list):
        return True
    return any(isinstance(c, dict) and c.get("action") in ("created", "changed") for c in changes)


def failed_in_batch(hostvars, batch, fact="smolotchi_release_outcome"):
    """Hosts of `batch` whose verdict is missing (unreachable, not run) or not ok."""
    failed = []
    for host in batch or []:
        outcome = hostvars[host].get(fact) if host in hostvars else None
        if not isinstance(outcome, dict) or not outcome.get("ok"):
            failed.append(host)
    return failed


def to_copy(found, sources, mode):
    """The controller files among `sources` (paths) to copy into a device folder, given the
    device's `find` answer (get_checksum) for that folder: those whose file (same name) is missing
    there, differs from the controller's (sha1, as the copy module compares), or is not root's with
    `mode`. Anything unexpected in the answer means "copy it": a needless copy is cheap, a stale or
    swapped file is not.
    """
    on_device = {}
    for entry in (found or {}).get("files") or []:
        if isinstance(entry, dict) and entry.get("path"):
            on_device[os.path.basename(entry["path"])] = entry
    wanted = []
    for source in sources or []:
        entry = on_device.get(os.path.basename(source))
        if (entry is None or entry.get("uid") != 0 or entry.get("gid") != 0 or entry.get("mode") != mode
                or entry.get("checksum") is None or entry.get("checksum") != _sha1(source)):
            wanted.append(source)
    return wanted


def _sha1(path):
    """sha1 of a controller file; None when it cannot be read here (a path the copy module finds
    through the role's search path, say): then it is copied and the copy module decides."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _last_deploy(deploy):
    if not isinstance(deploy, dict):
        return None
    frm = _first(deploy, "fromVersion", "from") or "-"
    to = _first(deploy, "toVersion", "to") or "-"
    when = _first(deploy, "finishedAt", "startedAt") or ""
    text = "#%s %s %s -> %s %s" % (deploy.get("id"), deploy.get("kind"), frm, to, deploy.get("status"))
    return (text + (" at " + when if when else "")).strip()


def status_row(result, host):
    """One host's line of the fleet report, from its `status --json` answer."""
    result = result or {}
    row = {"host": host, "reachable": True, "current": None, "lastGood": None, "degraded": False,
           "degradedReason": None, "lastDeploy": None, "drift": False, "driftFiles": [], "error": None}
    if result.get("unreachable"):
        row.update(reachable=False, error=_last_line(result.get("msg")) or "unreachable")
        return row
    answer = _answer(result)
    if not answer or "error" in answer:
        row["error"] = _error_message(answer, result)
        return row
    row.update(
        current=_first(answer, "current"),
        lastGood=_first(answer, "lastGood"),
        degraded=bool(_first(answer, "degraded")),
        degradedReason=_first(answer, "degradedReason"),
        lastDeploy=_last_deploy(_first(answer, "lastDeploy")),
        drift=bool(_first(answer, "drift")),
        driftFiles=_first(answer, "driftFiles") or [],
    )
    return row


def fleet_report(hostvars, hosts, fact="smolotchi_release_status_row"):
    """The fleet report: one row per host plus the number of hosts per current version."""
    rows = []
    for host in hosts or []:
        row = hostvars[host].get(fact) if host in hostvars else None
        rows.append(row if isinstance(row, dict) else status_row({"unreachable": True, "msg": "no status gathered"}, host))
    counts = {}
    for row in rows:
        if row["reachable"] and not row["error"]:
            key = row["current"] or "(none)"
            counts[key] = counts.get(key, 0) + 1
    return {
        "schemaVersion": 1,
        "hosts": rows,
        "versions": dict(sorted(counts.items())),
        "degraded": sorted(r["host"] for r in rows if r["degraded"]),
        "drift": sorted(r["host"] for r in rows if r["drift"]),
        "unreachable": sorted(r["host"] for r in rows if not r["reachable"]),
        "errors": sorted(r["host"] for r in rows if r["reachable"] and r["error"]),
    }


def _cell(value):
    text = "-" if value in (None, "", False) else ("yes" if value is True else str(value))
    # One table row per host: a pipe or a line break in a reason must not open a new cell or row.
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def fleet_markdown(report):
    """The fleet report as a Markdown table, then the count per version."""
    lines = ["# smolotchi fleet report", "",
             "| host | current | last good | degraded | last deploy | drift |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in report["hosts"]:
        if not r["reachable"]:
            current = "UNREACHABLE"
        elif r["error"]:
            current = "ERROR: " + r["error"]
        else:
            current = r["current"]
        degraded = ("DEGRADED: " + (r["degradedReason"] or "")) if r["degraded"] else "no"
        drift = ("DRIFT: " + ", ".join(r["driftFiles"])) if r["drift"] else "no"
        lines.append("| %s |" % " | ".join(_cell(v) for v in (r["host"], current, r["lastGood"], degraded, r["lastDeploy"], drift)))
    lines += ["", "| version | hosts |", "| --- | --- |"]
    lines += ["| %s | %d |" % (_cell(v), n) for v, n in report["versions"].items()]
    for key, label in (("unreachable", "unreachable"), ("errors", "status failed"), ("degraded", "degraded"), ("drift", "unit drift")):
        if report[key]:
            lines.append("")
            lines.append("%s: %s" % (label, ", ".join(report[key])))
    return "\n".join(lines) + "\n"


def fleet_counts(report):
    """One console line: hosts per version, then the hosts that need a look."""
    parts = ["%s: %d" % (v, n) for v, n in report["versions"].items()] or ["no host answered"]
    for key in ("unreachable", "errors", "degraded", "drift"):
        if report[key]:
            parts.append("%s: %s" % (key, ", ".join(report[key])))
    return "; ".join(parts)


class FilterModule(object):
    def filters(self):
        return {
            "smolotchi_release_verdict": verdict,
            "smolotchi_release_failed_in_batch": failed_in_batch,
            "smolotchi_release_to_copy": to_copy,
            "smolotchi_release_init_changed": init_changed,
            "smolotchi_release_status_row": status_row,
            "smolotchi_release_fleet_report": fleet_report,
            "smolotchi_release_fleet_markdown": fleet_markdown,
            "smolotchi_release_fleet_counts": fleet_counts,
        }
