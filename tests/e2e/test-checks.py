#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The e2e harness's checks can fail: recorded serial logs of real runs
(fixtures/cycle.serial, vfio-refused.serial and device-handover.serial) pass, and each way of
breaking them is caught."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import e2e    # noqa: E402

def fixture(name):
    return os.path.join(here, "fixtures", name + ".serial")


def only(vm, old, new):
    return lambda line: line.replace(old, new) if line.startswith(f"vmm {vm}:") else line


def on(prefix, old, new):
    return lambda line: line.replace(old, new) if line.startswith(prefix) else line


def drop(prefix):
    return lambda line: None if line.startswith(prefix) else line


CYCLE_BREAKAGES = {
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


VFIO_BREAKAGES = {
    "the device not bound": drop("E2E check edu-bound ok"),
    "a prepare accepted": on("E2E prepare ", "prepare rc=1 ", "prepare rc=0 "),
    "another error code": on("E2E prepare ", "device-not-preservable", "bad-state"),
    "the device not named": on("E2E prepare ", "0000:00:07.0 [1234:11e8]", "a device"),
    "no device in status": lambda l: (l[:l.index('"devices":')] + '"devices":[],"report":null}'
                                      if l.startswith("E2E status {") else l),
    "a device called preservable": on("E2E status {", '"preservable":false', '"preservable":true'),
    "another IOMMU group": on("E2E status {", '"iommu_group":2', '"iommu_group":3'),
    "no reason given": on("E2E status {", '"reason":"The', '"reason_":"The'),
    "no device line in the CLI": drop("E2E status-text   "),
    "a DMAR fault": lambda l: ("[    5.100000] DMAR: [DMA Write NO_PASID] Request device "
                               "[00:07.0] fault addr 0x1000" if "kyber registered" in l else l),
    "an update left behind": on("E2E status-after ", '"state":"idle"', '"state":"prepared"'),
    "memory corrupted": only("vm1", '"bad_words":0', '"bad_words":3'),
    "a VM that exited": lambda l: (l.replace('"event":"thawed"', '"event":"exited"')
                                   if l.startswith("vmm vm2:") else l),
    "no prepare once unbound": drop("E2E check prepare-unbound ok"),
    "a DMA that went astray": on("vmm edu:", '"round":2,"iova":"0x101000","bytes":2048,"bad_bytes":0',
                                 '"round":2,"iova":"0x101000","bytes":2048,"bad_bytes":2048'),
    "no DMA after the refusal": lambda l: None if l.startswith('vmm edu: {"event":"dma","round":2') else l,
    "a device never attached": drop('vmm edu: {"event":"attached"'),
    "a passthrough VMM that failed": on("vmm edu:", '"status":0', '"status":1'),
}

HANDOVER_BREAKAGES = {
    "the in-flight DMA lost": lambda l: l.replace('"step":"in-flight","iova":"0x102000","bytes":2048,"zero_before":true,"bad_bytes":0',
                                                  '"step":"in-flight","iova":"0x102000","bytes":2048,"zero_before":true,"bad_bytes":2048'),
    "no DMA through the old tables": lambda l: None if '"step":"old-tables"' in l else l,
    "a target written before": lambda l: (l.replace('"zero_before":true', '"zero_before":false')
                                          if '"step":"old-tables"' in l else l),
    "translation not left on": lambda l: None if "translation left on" in l else l,
    "nothing adopted": lambda l: None if "device(s) adopted" in l else l,
    "no page tables freed": lambda l: None if "page-table page(s) of the handed-over" in l else l,
    "nr_iommu_pages not falling": lambda l: l.replace('"iommu_pages_after":263', '"iommu_pages_after":266'),
    "bus mastering left on": lambda l: l.replace('"bus_master":false', '"bus_master":true'),
    "a DMAR fault after the kexec": lambda l: ("[    1.200000] DMAR: [DMA Write NO_PASID] Request device "
                                               "[00:07.0] fault addr 0x102000" if "kyber registered" in l
                                               and l.startswith("[    1.") else l),
    "the device not reserved at boot": drop("E2E check edu-bound-at-boot ok"),
    "one boot only": lambda l: None if "stage=2" in l else l,
    "an unattached device preserved": lambda l: (l.replace('"errno":22,"message":"Invalid argument"',
                                                           '"errno":0,"message":"preserved"')
                                                 if "edu-handover:" in l else l),
    "an unreadable event": lambda l: l.replace('"event":"finished",', '"event":"finished"') if "edu-handover:" in l else l,
}

# fixture name: (its check, what its summary must say, the ways to break it)
CASES = {
    "cycle": (e2e.check_cycle, lambda s: s["verified_bytes"] == 4 * 32 << 20 and s["vmms"] == 4,
              CYCLE_BREAKAGES),
    "vfio-refused": (e2e.check_vfio_refused, lambda s: s["iommu_group"] == 2, VFIO_BREAKAGES),
    "device-handover": (e2e.check_device_handover, lambda s: s["freed_table_pages"] == 3,
                        HANDOVER_BREAKAGES),
}


def main():
    failures = sum(e2e.check_breakages(name, fixture(name), check, summary_ok, breakages)
                   for name, (check, summary_ok, breakages) in CASES.items())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
