# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 3: a VMM does not answer FREEZE in time.

The daemon's freeze deadline (--freeze-timeout) must abort the commit with
vmm-failed before any kexec: every VMM is thawed with its memory intact,
every session cancelled, the image unloaded, the boot counter unchanged.
"""

import errno

import harness

#: long enough for the good VMMs to freeze on a slow sanitized run
FREEZE_TIMEOUT_MS = 2000


class TestFreezeTimeout(harness.WorldTestCase):

    def test_vmm_ignores_freeze(self):
        w = self.world
        w.start_daemon(f"--freeze-timeout={FREEZE_TIMEOUT_MS}")
        good = [w.start_vmm("vm-a"), w.start_vmm("vm-b", ram_fds=2)]
        slow = w.start_vmm("vm-deaf", fault="ignore-freeze")
        vmms = good + [slow]
        boot = w.fake_state()["boot"]

        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertEqual(prep["vmms"], 3, prep)

        r = w.ctl("commit")
        err = self.assertCtlError(r, "vmm-failed")
        self.assertIn("vm-deaf", err["message"], err)
        self.assertNotIn("vm-a", err["message"], "only the slow VMM is to blame")

        # the well-behaved VMMs froze, as asked, with the daemon's deadline
        for v in good:
            fr = v.wait_event("frozen")
            self.assertEqual(fr["timeout_ms"], FREEZE_TIMEOUT_MS, fr)
        self.assertEqual(slow.wait_event("fault")["fault"], "ignore-freeze")
        self.assertEqual(slow.find("frozen"), [], "the deaf VMM never froze")

        # no kexec; everyone thawed with their memory intact
        for v in vmms:
            ev = self.assertThawedIntact(v)
            self.assertEqual(ev["error"], -errno.ETIMEDOUT, ev)
        fk = self.assertNothingPending()
        self.assertEqual(fk["boot"], boot, "no kexec may have happened")
        self.assertTrue(w.daemon.running(), "the daemon must not have rebooted")
        self.assertIdle()
        rep = w.report()
        self.assertEqual(rep["error"]["code"], "vmm-failed", rep)
        self.assertIn(rep["outcome"], ("aborted", "failed"), rep)

        # all three are ordinary registered VMMs again
        lst = w.vmm_list()
        self.assertEqual({k: e["state"] for k, e in lst.items()},
                         {"vm-a": "registered", "vm-b": "registered", "vm-deaf": "registered"})


if __name__ == "__main__":
    harness.main()
