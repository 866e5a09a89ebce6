# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 8: a VM whose VMM never comes back after the kexec.

The others are restored and resumed independently. The update waits (its
memory kept) in restoring/finishing until an operator releases the absent
VM with liveupdatectl; then the update ends, failed, with that VM
released, and its session is gone from the kernel (its memory freed).
"""

import harness


class TestVmmNeverReturns(harness.WorldTestCase):

    def test_release_absent_vm(self):
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-a")
        w.start_vmm("vm-b", mode="self")
        w.start_vmm("vm-gone", ram_fds=2, mem_mib=8)
        boot = w.fake_state()["boot"]

        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        update_id = prep["update_id"]
        com = self.assertCtlOk(w.ctl("commit"))
        self.assertEqual(com["state"], "rebooting", com)
        self.assertIsInstance(com["freeze_us"], int, com)
        self.assertGreater(com["freeze_us"], 0, f"the freeze barrier takes time: {com}")

        new = w.simulate_reboot(boot, restart_vmms=["vm-a", "vm-b"])
        for v in new.values():
            self.assertTrue(v.wait_event("registered")["restore"])
            res = v.wait_event("restored")
            self.assertEqual(res["verified_bytes"], 16 << 20, res)
            self.assertTrue(res["checksum_ok"], res)
            v.wait_event("resumed")

        # the update waits for the absent VM, its memory still held
        st = w.status()
        self.assertIn(st["state"], ("restoring", "finishing"), st)
        self.assertEqual(st["update_id"], update_id, st)
        self.assertEqual(st["vmms"].get("awaiting"), 1, st)
        self.assertEqual(st["vmms"].get("registered"), 2, st)
        lst = w.vmm_list()
        self.assertEqual(lst["vm-gone"]["state"], "awaiting", lst)
        self.assertIs(lst["vm-gone"]["connected"], False, lst)
        fk = w.fake_state()
        gone = [s for s in fk["sessions"] if s["name"].endswith(".vm-gone")]
        self.assertEqual(len(gone), 1, fk)
        self.assertTrue(gone[0]["incoming"], gone)
        self.assertEqual(len(gone[0]["files"]), 3, gone)
        self.assertFalse(any(f["retrieved"] for f in gone[0]["files"]), gone)
        rep = w.report()
        self.assertEqual(rep["outcome"], "in-progress", rep)
        if harness.HAVE_TSC:
            # the blackout is not over while a VM is out
            self.assertIsInstance(rep["timeline"]["restore_us"], int, rep)
            self.assertIsNone(rep["timeline"]["handback_us"], rep)
            self.assertIsNone(rep["timeline"]["blackout_us"], rep)
            self.assertIsNone(rep["blackout_us"], rep)
        # the returned VMs' sessions are finished and gone; the daemon's own is kept
        names = sorted(s["name"] for s in fk["sessions"])
        self.assertFalse([n for n in names if n.endswith((".vm-a", ".vm-b"))], names)

        # release needs a real, absent VM
        self.assertCtlError(w.ctl("release", "vm-a"), "vmm-not-found")
        self.assertCtlError(w.ctl("release", "vm-nope"), "vmm-not-found")

        rel = self.assertCtlOk(w.ctl("release", "vm-gone"))
        self.assertEqual(rel, {"vm_id": "vm-gone", "released": True})

        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "failed", st)
        self.assertNothingPending()
        lst = w.vmm_list()
        self.assertEqual(sorted(lst), ["vm-a", "vm-b"], lst)

        rep = self.assertCtlOk(w.ctl("report"))["report"]
        self.assertEqual(rep["update_id"], update_id, rep)
        self.assertEqual(rep["outcome"], "failed", rep)
        vms = self.report_vmms(rep)
        self.assertEqual(vms["vm-gone"]["outcome"], "released", vms)
        self.assertEqual(vms["vm-gone"]["fds"], 3, vms)
        self.assertEqual(vms["vm-a"]["outcome"], "resumed", vms)
        self.assertEqual(vms["vm-b"]["outcome"], "resumed", vms)
        self.assertGreater(vms["vm-gone"]["frozen_us"], 0, vms)
        # the blackout is that of the VMs that came back; a released one has none
        self.assertIsNone(vms["vm-gone"]["blackout_us"], vms)
        if harness.HAVE_TSC:
            self.assertEqual(rep["timeline"]["blackout_us"],
                             max(vms[v]["blackout_us"] for v in ("vm-a", "vm-b")), rep)

        # released twice: not found any more
        self.assertCtlError(w.ctl("release", "vm-gone"), "vmm-not-found")
        # and a new VM of that name is just a new VM
        v = w.start_vmm("vm-gone", mem_mib=1)
        self.assertFalse(v.find("registered")[0]["restore"])

    def test_restore_timeout_releases_absent_vm(self):
        """With --restore-timeout the daemon lets an absent VM's memory go by
        itself, and not before the timeout."""
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-a", mem_mib=4)
        w.start_vmm("vm-gone", mem_mib=4)
        boot = w.fake_state()["boot"]
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))

        new = w.simulate_reboot(boot, restart_vmms=["vm-a"],
                                daemon_args=["--restore-timeout", "2"])
        new["vm-a"].wait_event("resumed")
        # vm-a is done well inside the timeout; vm-gone still holds its memory
        st = w.status()
        self.assertEqual(st["vmms"].get("awaiting"), 1, st)
        self.assertTrue([s for s in w.fake_state()["sessions"] if s["name"].endswith(".vm-gone")])

        st = w.wait_state("idle", timeout=10)
        self.assertEqual(st["last_outcome"], "failed", st)
        rep = w.report()
        vms = self.report_vmms(rep)
        self.assertEqual(vms["vm-gone"]["outcome"], "released", rep)
        self.assertEqual(vms["vm-a"]["outcome"], "resumed", rep)
        self.assertIn("did not come back within 2 s", w.daemon.stderr_text())
        self.assertNothingPending()


if __name__ == "__main__":
    harness.main()
