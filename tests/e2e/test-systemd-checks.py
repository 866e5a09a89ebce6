#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The systemd guest's checks can fail: a recorded serial log of a real
e2e-systemd-restart run (fixtures/systemd-restart.serial) passes, and each
way of breaking it is caught."""

import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import e2e    # noqa: E402

FIXTURE = os.path.join(here, "fixtures", "systemd-restart.serial")


def on(prefix, old, new):
    """Replaces OLD by NEW (a regular expression) on the lines starting with PREFIX."""
    return lambda line: re.sub(old, new, line) if line.startswith(prefix) else line


def drop(prefix):
    return lambda line: None if line.startswith(prefix) else line


def in_stage(stage, mutate):
    """MUTATE applied only to the lines of one boot of the scenario."""
    seen = {"stage": 0}

    def f(line):
        if line.startswith("E2E begin "):
            seen["stage"] += 1
        return mutate(line) if seen["stage"] == stage else line
    return f


BREAKAGES = {
    "PID 1 not systemd": on("E2E begin ", "init=systemd", "init=sh"),
    "a failed unit": on("E2E system ", "running", "degraded"),
    "seccomp not in force": drop("E2E check daemon-seccomp ok"),
    "/usr writable for the daemon": drop("E2E check daemon-usr-readonly ok"),
    "no session in the fd store": on("E2E kill daemon ", r"fdstore=\d+", "fdstore=0"),
    "systemd did not restart it": on("E2E daemon ", "nrestarts=1", "nrestarts=0"),
    "fds lost across the restart": on("E2E daemon ", r"nrestarts=1 fdstore=\d+",
                                      "nrestarts=1 fdstore=1"),
    "the update rolled back": on("E2E status-after ", '"state":"prepared"', '"state":"idle"'),
    "another update after the restart": on("E2E status-after ", '"update_id":"[^"]*"',
                                           '"update_id":"other"'),
    "a VMM not back": on("E2E list-after ", '"connected":true', '"connected":false'),
    "a VM thawed": on("vmm vm2: ", '"event":"prepared"', '"event":"thawed"'),
    "no commit": drop("E2E commit"),
    "no kexec": lambda l: None if "kexec_core: Starting new kernel" in l else l,
    "bytes not verified": on("vmm vm3: ", '"verified_bytes":33554432', '"verified_bytes":4096'),
    "a VM never resumed": lambda l: None if l.startswith("vmm vm1: ") and '"resumed"' in l else l,
    "an update that failed": on("E2E report ", '"outcome":"success"', '"outcome":"failed"'),
    "the new kernel's daemon restarted": in_stage(2, on("E2E daemon ", "nrestarts=0",
                                                       "nrestarts=1")),
    "fds left in the fd store": in_stage(2, on("E2E daemon ", "fdstore=0", "fdstore=2")),
    "the guest failing": lambda l: "E2E fail something" if l == "E2E vmms writing" else l,
    "no end": drop("E2E end"),
}


def main():
    failures = e2e.check_breakages(
        "systemd-restart", FIXTURE, e2e.check_systemd_restart,
        lambda s: s["verified_bytes"] == 3 * 32 << 20 and s["fdstore_fds"] > 0, BREAKAGES)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
