#!/usr/bin/env python3
"""Checks for packaging/test-systemd.sh of the unit as systemd runs it.

  unit_props.py settings UNIT_FILE SHOW_OUTPUT SYSCALL_FILTER_OUTPUT
      every [Service] line of the unit file is in force, in systemd's own words: SHOW_OUTPUT
      is `systemctl show UNIT`, SYSCALL_FILTER_OUTPUT is `systemd-analyze syscall-filter`
      (every group) from the same systemd, used to expand SystemCallFilter=. A setting this
      script does not know how to compare fails the check, so a new line in the unit gets a
      rule here rather than going unchecked.
  unit_props.py syscalls SHOW_OUTPUT STRACE_LOG
      every system call in an `strace -f` log of the running daemon is in the allow list
      systemd built for it (SystemCallFilter in SHOW_OUTPUT). With SystemCallErrorNumber=EPERM
      a refused call fails quietly, so this is how a refusal is seen.
"""

import errno
import re
import signal
import sys

# Properties `systemctl show` names differently from the unit file.
RENAMED = {"WatchdogSec": "WatchdogUSec", "RestartSec": "RestartUSec", "TimeoutStopSec": "TimeoutStopUSec"}
# Compared as sets of words, ignoring case (capability names are shown in lower case).
WORD_SETS = {"CapabilityBoundingSet", "AmbientCapabilities", "RestrictAddressFamilies"}
# Compared as the same text.
PLAIN = {
    "Type", "NotifyAccess", "Restart", "RestartPreventExitStatus", "User", "Group", "StateDirectory",
    "StateDirectoryMode", "WorkingDirectory", "UMask", "LimitNOFILE", "NoNewPrivileges", "ProtectSystem",
    "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
    "ProtectProc", "ProcSubset", "RemoveIPC", "KeyringMode", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures",
    "WatchdogUSec", "RestartUSec", "TimeoutStopUSec",
}


def unit_settings(path):
    """[(key, value)] of the [Service] section, in order (a key may repeat)."""
    section, out = None, []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def show_properties(path):
    props = {}
    for line in open(path):
        key, sep, value = line.rstrip("\n").partition("=")
        if sep:
            props[key] = value
    return props


def syscall_groups(path):
    """{"@group": [member, ...]} from `systemd-analyze syscall-filter`."""
    groups, current = {}, None
    for line in open(path):
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
        elif not line.strip():
            current = None
    return groups


def expand(name, groups):
    if not name.startswith("@"):
        return {name}
    out = set()
    for member in groups[name]:
        out |= expand(member, groups)
    return out


def syscall_filter(lines, groups):
    """The allow list systemd builds: the first line (an allow list) plus @default, then each
    `~` line removes its calls."""
    allowed = None
    for value in lines:
        deny = value.startswith("~")
        names = set()
        for word in value.lstrip("~").split():
            names |= expand(word, groups)
        if allowed is None:
            if deny:
                sys.exit("SystemCallFilter= starts with a deny list; this check expects an allow list")
            allowed = names | expand("@default", groups)
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def check_syscalls(show_path, strace_path):
    allowed = set(show_properties(show_path).get("SystemCallFilter", "").split())
    if not allowed:
        sys.exit("systemctl show has no SystemCallFilter")
    seen, refused = set(), set()
    for line in open(strace_path):
        m = re.match(r"\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
        if not m:
            continue
        name = m.group(1) or m.group(2)
        seen.add(name)
        if name not in allowed:
            refused.add(name)
    if not seen:
        sys.exit(f"{strace_path}: no system call traced")
    if refused:
        sys.exit(f"the daemon made system calls outside the unit's filter: {sorted(refused)}")
    print(f"system calls made by the running daemon: {len(seen)}; outside the unit's filter: none")


def main():
    if sys.argv[1] == "syscalls":
        return check_syscalls(sys.argv[2], sys.argv[3])
    if sys.argv[1] != "settings":
        sys.exit(__doc__)
    unit, show, groups = unit_settings(sys.argv[2]), show_properties(sys.argv[3]), syscall_groups(sys.argv[4])
    problems, checked = [], 0
    filters = [v for k, v in unit if k == "SystemCallFilter"]
    for key, value in unit:
        prop = RENAMED.get(key, key)
        got = show.get(prop)
        if key == "SystemCallFilter":
            continue
        if key in ("ExecStart", "ExecReload"):
            m = re.search(r"argv\[\]=(.*?) ;", show.get(key, ""))
            ok = m is not None and m.group(1) == value
            got = m.group(1) if m else show.get(key)
        elif key == "KillSignal":
            ok = got == str(signal.Signals[value].value)
        elif key == "SystemCallErrorNumber":
            ok = got == str(getattr(errno, value))
        elif prop in WORD_SETS:
            ok = got is not None and set(got.lower().split()) == set(value.lower().split())
        elif prop in PLAIN:
            ok = got == value
        else:
            problems.append(f"{key}={value}: no rule to compare it with `systemctl show` (add one)")
            continue
        checked += 1
        if not ok:
            problems.append(f"{key}={value}: systemd reports {prop}={got}")
    if filters:
        want = syscall_filter(filters, groups)
        got = set(show.get("SystemCallFilter", "").split())
        checked += 1
        if got - want:
            problems.append(f"SystemCallFilter: systemd allows {sorted(got - want)} beyond the unit's list")
        else:
            print(f"SystemCallFilter: {len(got)} system calls allowed, none beyond the unit's lines")
        # Names the group tables hold but this systemd's libseccomp cannot resolve (newer or
        # other-architecture calls) are dropped when the filter is built: nothing can call them.
        if want - got:
            print(f"SystemCallFilter: not resolvable here, so not in the filter: {' '.join(sorted(want - got))}")
    if problems:
        sys.exit("the unit's settings are not in force:\n  " + "\n  ".join(problems))
    print(f"systemctl show: all {checked} [Service] settings of the unit are in force as written")


if __name__ == "__main__":
    main()
