# SPDX-License-Identifier: LGPL-2.1-or-later
"""The modules a preserved file needs are loaded before /dev/liveupdate is
first opened after the kexec (that open deserializes every file, and a
missing handler fails it for good).

The commit writes them to <state>/handover.json; the next daemon loads them
with libkmod, here against a modules tree the test builds with depmod, in
which the modules are built in. memfds need no module, so the test names
the modules the vfio and iommufd handlers would need.
"""

import json
import os
import shutil
import subprocess

import harness


def modules_tree(w: harness.World) -> str:
    root = w.path("modules-root")
    d = os.path.join(root, "lib", "modules", "9.9.9")
    os.makedirs(d)
    with open(os.path.join(d, "modules.builtin"), "w") as f:
        f.write("kernel/drivers/vfio/pci/vfio-pci.ko\nkernel/drivers/iommu/iommufd/iommufd.ko\n")
    open(os.path.join(d, "modules.order"), "w").close()
    depmod = shutil.which("depmod") or "/sbin/depmod"
    subprocess.run([depmod, "-b", root, "9.9.9"], check=True, capture_output=True)
    return d


class TestHandoverModules(harness.WorldTestCase):

    def setUp(self):
        if not (shutil.which("depmod") or os.path.exists("/sbin/depmod")):
            self.skipTest("depmod (package kmod) is not installed")
        super().setUp()

    def cycle(self, modules: list[str]) -> str:
        """One update with one VM; the handover names modules. Returns the
        new daemon's log."""
        w = self.world
        tree = modules_tree(w)
        w.start_daemon()
        w.start_vmm("vm-a", mem_mib=4)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))

        handover = os.path.join(w.state_dir, "handover.json")
        with open(handover) as f:
            h = json.load(f)
        self.assertEqual(h["update_id"], prep["update_id"], h)
        self.assertEqual(h["modules"], [], "memfds need no module")

        def boot_daemon(args: list[str]) -> None:
            # what a commit that preserved vfio and iommufd fds would have written
            with open(handover, "w") as f:
                json.dump({"update_id": h["update_id"], "modules": modules}, f)
            w.start_daemon(*args, "--modules-dir", tree)

        new = w.simulate_reboot(boot, start_daemon=boot_daemon)
        new["vm-a"].wait_event("resumed")
        self.assertEqual(w.wait_state("idle")["last_outcome"], "success")
        self.assertFalse(os.path.exists(handover), "the handover file is gone after the update")
        return w.daemon.stderr_text()

    def test_modules_loaded_before_luo_opens(self):
        log = self.cycle(["vfio-pci", "iommufd"])
        loaded = log.find("Loaded 2 module(s)")
        restoring = log.find("Restoring update")
        self.assertGreaterEqual(loaded, 0, log)
        self.assertGreater(restoring, loaded, "modules first, then /dev/liveupdate")

    def test_missing_module_is_reported(self):
        log = self.cycle(["no_such_module"])
        self.assertIn("Cannot load module no_such_module", log)


if __name__ == "__main__":
    harness.main()
