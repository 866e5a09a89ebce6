# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 2: a VMM dies while the update is being prepared.

Its connection drops in the middle of prepare: the daemon must fail the
prepare with vmm-failed, thaw the other VMMs (whose memory was never
touched), cancel every session, unload the kernel, and be ready for the
next prepare once the dead VMM is gone.
"""

import errno

import harness


class TestVmmDiesAtPrepare(harness.WorldTestCase):

    def test_vmm_exits_during_prepare(self):
        w = self.world
        w.start_daemon()
        good = [w.start_vmm("vm-a"), w.start_vmm("vm-b", mode="self")]
        bad = w.start_vmm("vm-dies", fault="exit-at-prepare")
        bad.allowed_exit = {harness.VMM_EXIT_ERROR}
        boot = w.fake_state()["boot"]
        image = w.make_kernel_image()

        r = w.ctl("prepare", image)
        err = self.assertCtlError(r, "vmm-failed")
        self.assertIn("vm-dies", err["message"], err)

        # the VMM really died at PREPARE, as injected
        self.assertEqual(bad.wait_event("fault")["fault"], "exit-at-prepare")
        self.assertEqual(bad.wait_exit(), harness.VMM_EXIT_ERROR)

        # the others were told, checked every byte, and run on
        for v in good:
            ev = self.assertThawedIntact(v)
            self.assertEqual(ev["verified_bytes"], 16 << 20, ev)

        fk = self.assertNothingPending()
        self.assertEqual(fk["boot"], boot, fk)
        st = self.assertIdle()
        self.assertIn(st["last_outcome"], ("aborted", "failed"), st)
        rep = w.report()
        self.assertIsNotNone(rep)
        self.assertEqual(rep["error"]["code"], "vmm-failed", rep)
        self.assertIn(rep["outcome"], ("aborted", "failed"), rep)
        vms = self.report_vmms(rep)
        self.expect(vms.get("vm-dies", {}).get("outcome") == "failed",
                    f"the VM that died should be 'failed' in the report: {vms}")
        for v in good:
            self.expect(vms.get(v.vm_id, {}).get("outcome") == "thawed",
                        f"{v.vm_id} should be 'thawed' in the report: {vms}")

        # the dead VMM is forgotten; the next prepare goes through with the others
        lst = w.vmm_list()
        self.assertEqual(sorted(lst), ["vm-a", "vm-b"], lst)
        prep = self.assertCtlOk(w.ctl("prepare", image))
        self.assertEqual(prep["state"], "prepared", prep)
        self.assertEqual(prep["vmms"], 2, prep)
        for v in good:
            # the first prepare may have raced the abort ("preserving ...: EBUSY")
            ev = v.wait_event("prepared", pred=lambda e: e["update_id"] == prep["update_id"],
                              fail_on_error=False)
            self.assertEqual(ev["fds"], 2, ev)
        fk = w.fake_state()
        self.assertEqual(len(fk["sessions"]), 3, fk)
        self.assertIsNotNone(fk["kexec"], fk)

        # and is rolled back cleanly again
        self.assertCtlOk(w.ctl("abort"))
        for v in good:
            ev = self.assertThawedIntact(v, count=2)
            self.assertEqual(ev["error"], -errno.ECANCELED, ev)
        self.assertNothingPending()
        self.assertIdle("aborted")


if __name__ == "__main__":
    harness.main()
