# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 9: the kernel refuses the kexec.

The fake kernel is started with --fail-freeze (a preserved file's freeze
fails, so reboot() returns the error and rolls back). Every VMM froze, the
daemon called reboot(), it came back: the update must fail with
reboot-failed, every VMM be thawed with its memory intact, every session be
cancelled, the image unloaded, and no boot have happened.

The commit reply itself is sent before reboot() by design (the API: "sent
just before the kexec"), so the failure is observed where the API puts it:
the outcome event, the report and the status.
"""

import errno

import harness


class TestRebootRefused(harness.WorldTestCase):

    def fake_kernel_args(self):
        return {"fail_freeze": errno.EBUSY}

    def test_kernel_refuses_kexec(self):
        w = self.world
        w.start_daemon()
        vmms = [w.start_vmm("vm-a"), w.start_vmm("vm-b", mode="self"),
                w.start_vmm("vm-c", ram_fds=2)]
        fk = w.fake_state()
        boot = fk["boot"]
        self.assertEqual(fk["fail_freeze"], errno.EBUSY, fk)

        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        update_id = prep["update_id"]

        with w.subscribe() as sub:
            com = w.call("commit")
            # every VMM froze: the kernel was really asked
            for v in vmms:
                v.wait_event("frozen")
            outcome = None
            states = []
            while outcome is None:
                try:
                    msg = sub.read()
                except harness.HarnessError:
                    self.fail(f"no outcome event after the refused kexec; states seen {states}; "
                              f"status now {w.status()}; VMMs thawed: "
                              f"{[v.vm_id for v in vmms if v.find('thawed')]}")
                self.assertIsNotNone(msg, f"subscription closed; states {states}")
                if msg.get("event") == "state":
                    states.append(msg["state"])
                if msg.get("event") == "outcome":
                    outcome = msg
        self.assertEqual(outcome["update_id"], update_id, outcome)
        self.assertIsNotNone(outcome["error"], outcome)
        self.assertEqual(outcome["error"]["code"], "reboot-failed", outcome)
        self.assertIn(outcome["outcome"], ("failed", "aborted"), outcome)
        self.assertIn("rebooting", states, states)
        # the commit's own answer, whatever it is, must not claim another update
        self.assertEqual(com.get("result", {}).get("update_id", update_id), update_id, com)
        if not com["ok"]:
            self.assertEqual(com["error"]["code"], "reboot-failed", com)

        fk = w.fake_state()
        self.assertEqual(fk["boot"], boot, "no kexec happened")
        self.assertEqual(fk["freeze_failures"], 1, fk)
        self.assertTrue(w.daemon.running(), "reboot() returned: the daemon lives on")

        for v in vmms:
            ev = self.assertThawedIntact(v)
            self.assertEqual(ev["error"], -errno.EBUSY, f"THAW carries the kernel's errno: {ev}")
            # frozen, nearly kexeced, thawed: and every byte still as it was
            self.assertVerifiedIntact(v, ev["verified_bytes"])
        self.assertNothingPending()
        st = self.assertIdle()
        self.assertIn(st["last_outcome"], ("failed", "aborted"), st)
        rep = w.report()
        self.assertEqual(rep["error"]["code"], "reboot-failed", rep)
        self.assertIsNone(rep["timeline"], f"no kexec, no timeline: {rep}")

        # the machine is usable again: with the fault gone, the next update goes through
        w.fake("clear-fail-freeze")
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertEqual(prep["vmms"], 3, prep)
        self.assertCtlOk(w.ctl("abort"))

    def test_ctl_commit_reports_the_rollback(self):
        """liveupdatectl commit must not claim a reboot the kernel refused."""
        w = self.world
        w.start_daemon()
        vmm = w.start_vmm("vm-a")
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))

        r = w.ctl("commit", json_output=False)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("reboot-failed", r.stderr, r)
        self.assertThawedIntact(vmm)
        self.assertIdle()


if __name__ == "__main__":
    harness.main()
