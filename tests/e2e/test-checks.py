#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The e2e harness's checks can fail: recorded serial logs of real runs
(fixtures/*.serial, but for systemd-restart's, which test-systemd-checks.py
replays) pass, and each way of breaking them is caught."""

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
    "a device called not preservable": on("E2E status {", '"preservable":true', '"preservable":false'),
    "a device called preserved": on("E2E status {", '"handover":"none"', '"handover":"preserved"'),
    "no refusal reason": on("E2E prepare ", "is bound to vfio-pci but no VMM preserved it",
                            "is bound to vfio-pci"),
    "another IOMMU group": on("E2E status {", '"iommu_group":2', '"iommu_group":3'),
    "a reason where none is": on("E2E status {", '"reason":null', '"reason":"no"'),
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


def hotswap(old, new):
    """Change what the hot-swap program said, in both copies of its events."""
    return lambda l: l.replace(old, new) if "edu-hotswap:" in l or l.startswith("vmm edu:") else l


HOTSWAP_BREAKAGES = {
    "the iommufd preserved before its memory": hotswap(
        '"what":"iommufd-before-memory","errno":67,"message":"Link has been severed"',
        '"what":"iommufd-before-memory","errno":0,"message":"preserved"'),
    "another errno for the device before its iommufd": hotswap(
        '"what":"device-before-iommufd","errno":67', '"what":"device-before-iommufd","errno":22'),
    "no DMA after the refusals": lambda l: None if '"step":"after-refusal"' in l else l,
    "the in-flight DMA lost": hotswap('"step":"in-flight","iova":"0x102000","bytes":2048,"zero_before":true,"bad_bytes":0',
                                      '"step":"in-flight","iova":"0x102000","bytes":2048,"zero_before":true,"bad_bytes":2048'),
    "a target written before": hotswap('"step":"old-tables","iova":"0x103000","bytes":2048,"zero_before":true',
                                       '"step":"old-tables","iova":"0x103000","bytes":2048,"zero_before":false'),
    "FINISH without a new domain": hotswap('"why":"not-attached","errno":16', '"why":"not-attached","errno":0'),
    "FINISH with a wrong domain": hotswap('"why":"wrong-domain","errno":16', '"why":"wrong-domain","errno":0'),
    "a refused FINISH that freed tables": hotswap('"why":"wrong-domain","errno":16,"iommu_pages_before":269,"iommu_pages_after":269',
                                                  '"why":"wrong-domain","errno":16,"iommu_pages_before":269,"iommu_pages_after":266'),
    "no reason for a refused FINISH": lambda l: None if "the new domain translates to" in l else l,
    "no hot swap": lambda l: l[:l.index("[    2.916294]")] if "translation replaced" in l else l,
    # the serial console interleaves lines like this when they coincide
    "a swap at attach, before FINISH": lambda l: (l + "[    2.790000] vfio-pci 0000:00:07.0: DMAR: live update: "
                                                  "handed-over translation replaced (did 4 -> 6)"
                                                  if '"event":"rebuilt"' in l and l.startswith("vmm edu:") else l),
    "no page tables freed": lambda l: None if "page-table page(s) of the handed-over" in l else l,
    "nr_iommu_pages not falling": hotswap('"iommu_pages_after":266,"bus_master"', '"iommu_pages_after":269,"bus_master"'),
    "the device stopped at FINISH": hotswap('"bus_master":true', '"bus_master":false'),
    "the new domain's DMA astray": hotswap('"step":"new-domain","iova":"0x105000","bytes":2048,"zero_before":true,"bad_bytes":0',
                                           '"step":"new-domain","iova":"0x105000","bytes":2048,"zero_before":true,"bad_bytes":7'),
    "a DMAR fault after the swap": lambda l: ("[    2.920000] DMAR: [DMA Write NO_PASID] Request device "
                                              "[00:07.0] fault addr 0x105000" if "the device stays with its user" in l else l),
    "the device not reserved at boot": drop("E2E check edu-bound-at-boot ok"),
}

def edu_vmm(old, new):
    """Change what the daemon's edu VMM said, in both copies of its events."""
    return lambda l: l.replace(old, new) if "edu-vmm:" in l or l.startswith("vmm edu:") else l


UPDATE_BREAKAGES = {
    "the in-flight DMA lost": edu_vmm('"step":"in-flight","iova":"0x101000","bytes":2048,"zero_before":true,"bad_bytes":0',
                                      '"step":"in-flight","iova":"0x101000","bytes":2048,"zero_before":true,"bad_bytes":2048'),
    "no DMA through the old tables": lambda l: None if '"step":"old-tables"' in l else l,
    "the new domain's DMA astray": edu_vmm('"step":"new-domain","iova":"0x104000","bytes":2048,"zero_before":true,"bad_bytes":0',
                                           '"step":"new-domain","iova":"0x104000","bytes":2048,"zero_before":true,"bad_bytes":5'),
    "no hot swap": lambda l: l.replace("handed-over translation replaced", "handed-over translation kept"),
    "no page tables freed": lambda l: None if "page-table page(s) of the handed-over" in l else l,
    "nr_iommu_pages not falling": edu_vmm('"iommu_pages_after":266', '"iommu_pages_after":269'),
    "the device stopped": edu_vmm('"event":"resumed","iommu_pages_before":269,"iommu_pages_after":266,"bus_master":true',
                                  '"event":"resumed","iommu_pages_before":269,"iommu_pages_after":266,"bus_master":false'),
    "status not showing the preserve": on("E2E status-prepared {", '"handover":"preserved"', '"handover":"none"'),
    "status not showing the restored domain": on("E2E status-restored {", '"handover":"restored-domain"',
                                                  '"handover":"hot-swapped"'),
    "status not showing the swap": on("E2E status-swapped {", '"handover":"hot-swapped"', '"handover":"restored-domain"'),
    "the device preserved by nobody": on("E2E status-prepared {", '"vm_id":"edu"', '"vm_id":null'),
    "a VM not resumed": lambda l: None if l.startswith("vmm vm2:") and '"resumed"' in l else l,
    "modules not loaded": lambda l: None if "module(s) for the preserved files" in l else l,
    "an update that failed": on("E2E report", '"outcome":"success"', '"outcome":"failed"'),
    "a DMAR fault": lambda l: ("[    4.470000] DMAR: [DMA Write NO_PASID] Request device "
                               "[00:07.0] fault addr 0x101000" if '"event":"taken-over"' in l and "edu-vmm:" in l else l),
}

VERSION_BREAKAGES = {
    "no version handed over": lambda l: l.replace('"event":"version-override","version":99',
                                                  '"event":"version-override","version":1'),
    "guest RAM damaged": lambda l: l.replace('"event":"ram-intact","bad_bytes":0', '"event":"ram-intact","bad_bytes":64'),
    "the refused device retrieved": lambda l: l.replace('"event":"retrieve-refused","errno":5',
                                                        '"event":"retrieve-refused","errno":0'),
    "the refused device's DMA landing": lambda l: l.replace('"landed":false', '"landed":true'),
    "bus mastering left on": lambda l: l.replace('"landed":false,"bus_master":false', '"landed":false,"bus_master":true'),
    "memory decoding left on": lambda l: l.replace('"memory_decoding_was":false', '"memory_decoding_was":true'),
    "no DMA asked for": lambda l: l.replace('"completed":true', '"completed":false'),
    "the version not refused": lambda l: None if "not supported (this kernel: 1)" in l else l,
    "the device not made safe": lambda l: None if "translation not adopted, bus mastering turned off" in l else l,
    "tables adopted anyway": lambda l: l.replace("0 device(s) adopted", "1 device(s) adopted"),
    "the refusal unchecked": drop("E2E check refusal-safe ok"),
}

SELFTEST_BREAKAGES = {
    "a new iommufd failure": lambda l: l.replace("selftest iommufd: ok 245 iommufd_device_pasid.no_pasid.pasid_attach",
                                                 "selftest iommufd: not ok 245 iommufd_device_pasid.no_pasid.pasid_attach"),
    "a liveupdate failure": lambda l: l.replace("selftest liveupdate: # Totals: pass:15 fail:0",
                                                "selftest liveupdate: # Totals: pass:14 fail:1"),
    "liveupdate exiting 1": lambda l: l.replace("E2E selftest liveupdate rc=0", "E2E selftest liveupdate rc=1"),
    "iommufd not run": lambda l: None if l.startswith("selftest iommufd: # Totals") else l,
    "the kexec test failing after the kexec": lambda l: None if "SIMPLE KEXEC TEST PASSED" in l else l,
    "the multi-session test failing after the kexec": lambda l: (l.replace("MULTI-SESSION KEXEC TEST PASSED",
                                                                          "MULTI-SESSION KEXEC TEST FAILED")),
    "a stage that exited 1": lambda l: l.replace("E2E selftest luo_multi_session rc=0",
                                                 "E2E selftest luo_multi_session rc=1"),
    "no kexec": lambda l: None if "stage=2" in l else l,
    "a KUnit case failing": lambda l: (l.replace("# iommufd_liveupdate: pass:4 fail:0", "# iommufd_liveupdate: pass:3 fail:1")
                                       .replace("] ok 1 iommufd_liveupdate", "] not ok 1 iommufd_liveupdate")),
    "KUnit not run": lambda l: None if "iommufd_liveupdate" in l else l,
}

# fixture name: (its check, what its summary must say, the ways to break it)
CASES = {
    "cycle": (e2e.check_cycle, lambda s: s["verified_bytes"] == 4 * 32 << 20 and s["vmms"] == 4,
              CYCLE_BREAKAGES),
    "vfio-refused": (e2e.check_vfio_refused, lambda s: s["iommu_group"] == 2, VFIO_BREAKAGES),
    "device-handover": (e2e.check_device_handover, lambda s: s["freed_table_pages"] == 3,
                        HANDOVER_BREAKAGES),
    "device-hotswap": (e2e.check_device_hotswap, lambda s: s["freed_table_pages"] == 3,
                       HOTSWAP_BREAKAGES),
    "device-update": (e2e.check_device_update,
                      lambda s: s["device"]["handover"] == ["none", "preserved", "restored-domain",
                                                            "hot-swapped"],
                      UPDATE_BREAKAGES),
    "device-version-refused": (e2e.check_device_version_refused,
                               lambda s: s["device"] == "made safe", VERSION_BREAKAGES),
    "kernel-selftests": (e2e.check_kernel_selftests,
                         lambda s: s["selftests"]["iommufd"]["pass"] == 233 and
                         s["selftests"]["luo_multi_session"] == "passed", SELFTEST_BREAKAGES),
}


def main():
    failures = sum(e2e.check_breakages(name, fixture(name), check, summary_ok, breakages)
                   for name, (check, summary_ok, breakages) in CASES.items())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
