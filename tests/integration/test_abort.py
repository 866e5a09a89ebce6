# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 5: an operator aborts a prepared update.

Every VMM is thawed (error ECANCELED) with its memory intact, every session
is cancelled, the kernel unloaded, the daemon idle with outcome aborted.
Abort (and commit) with nothing prepared are bad-state.
"""

import errno

import harness


class TestAbort(harness.WorldTestCase):

    def test_abort_after_prepare(self):
        w = self.world
        w.start_daemon()
        vmms = [w.start_vmm("vm-a"), w.start_vmm("vm-b", mode="self"),
                w.start_vmm("vm-c", ram_fds=3, mem_mib=4)]
        boot = w.fake_state()["boot"]

        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        for v in vmms:
            v.wait_event("prepared")
        fk = w.fake_state()
        self.assertEqual(len(fk["sessions"]), 4, fk)
        self.assertIsNotNone(fk["kexec"], fk)
        self.assertEqual(w.status()["state"], "prepared")

        res = self.assertCtlOk(w.ctl("abort"))
        self.assertEqual(res["update_id"], prep["update_id"], res)
        self.assertEqual(res["state"], "idle", res)

        for v in vmms:
            ev = self.assertThawedIntact(v)
            self.assertEqual(ev["error"], -errno.ECANCELED, ev)
        self.assertEqual(vmms[2].find("thawed")[0]["verified_bytes"], 3 * (4 << 20))
        for v in vmms:
            self.assertVerifiedIntact(v)
        fk = self.assertNothingPending()
        self.assertEqual(fk["boot"], boot, fk)
        self.assertIdle("aborted")
        rep = w.report()
        self.assertEqual(rep["update_id"], prep["update_id"], rep)
        self.assertEqual(rep["outcome"], "aborted", rep)
        self.assertEqual(rep["error"]["code"], "aborted", rep)
        self.assertIsNone(rep["timeline"], f"no kexec, no timeline: {rep}")
        for vm_id, e in self.report_vmms(rep).items():
            self.expect(e["outcome"] == "thawed", f"{vm_id} in the aborted report: {e}")

        # nothing to abort now, nothing to commit
        err = self.assertCtlError(w.ctl("abort"), "bad-state")
        self.assertTrue(err["message"], err)
        self.assertCtlError(w.ctl("commit"), "bad-state")
        reply = w.call("abort")
        self.assertEqual(reply["error"]["code"], "bad-state", reply)
        self.assertEqual(reply["error"].get("errno"), "EBUSY", reply)
        self.assertIdle("aborted")
        # nobody was thawed twice
        for v in vmms:
            self.assertEqual(len(v.find("thawed")), 1, v.events)


if __name__ == "__main__":
    harness.main()
