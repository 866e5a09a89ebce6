#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The e2e harness's checks can fail: a recorded serial log of a real cycle
(fixtures/cycle.serial) passes, and each way of breaking it is caught."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import e2e    # noqa: E402
import guest  # noqa: E402

FIXTURE = os.path.join(here, "fixtures", "cycle.serial")


def replay(mutate=lambda line: line):
    return guest.replay(FIXTURE, mutate)


def only(vm, old, new):
    return lambda line: line.replace(old, new) if line.startswith(f"vmm {vm}:") else line


BREAKAGES = {
    "a checksum mismatch": only("vm3", '"checksum_ok":true', '"checksum_ok":false'),
    "bytes not verified": only("vm2", '"verified_bytes":33554432', '"verified_bytes":33550000'),
    "a kernel panic": lambda l: l.replace("KHO: found kexec handover data", "Kernel panic - not syncing"),
    "a kernel warning": lambda l: l + " WARNING: CPU: 1 PID: 1" if "luo" in l.lower() else l,
    "no kexec handover": lambda l: None if "KHO: found kexec handover data" in l else l,
    "a VM not writing again": lambda l: None if l.startswith("vmm vm4:") and '"writing"' in l else l,
    "a VM never resumed": lambda l: None if l.startswith("vmm vm1:") and '"resumed"' in l else l,
    "the guest failing": lambda l: "E2E fail something" if l == "E2E vmms writing" else l,
    "no end": lambda l: None if l == "E2E end" else l,
    "one boot only": lambda l: None if "stage=2" in l else l,
    "an update that failed": lambda l: l.replace('"outcome":"success"', '"outcome":"failed"'),
    "no timeline": lambda l: l.replace('"timeline":{', '"timeline_":{'),
}


def main():
    failures = 0
    summary = e2e.check_cycle(replay())
    if summary["verified_bytes"] != 4 * 32 << 20 or summary["vmms"] != 4:
        print(f"FAIL the recorded cycle summarises as {summary}")
        failures += 1
    else:
        print("ok   the recorded cycle passes")
    for name, mutate in BREAKAGES.items():
        try:
            e2e.check_cycle(replay(mutate))
        except e2e.Failure as f:
            print(f"ok   {name}: {f}")
            continue
        print(f"FAIL {name} was not caught")
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
