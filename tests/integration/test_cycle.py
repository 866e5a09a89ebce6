# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 1: a full live update cycle under three running VMs.

prepare (liveupdatectl, default command line) -> commit -> the kexec (the
daemon dies inside reboot(), the fake kernel moves to the next boot) -> a
new daemon and new VMMs with the same ids -> every VMM gets its memory
back, verifies every byte, resumes -> the daemon finishes every session and
goes idle with a success report.
"""

import harness


class TestFullCycle(harness.WorldTestCase):

    def test_full_cycle(self):
        w = self.world
        w.start_daemon()
        # one daemon-preserved (send) VMM, one that preserves into the
        # session itself, one with two RAM memfds
        w.start_vmm("vm-send", mem_mib=16)
        w.start_vmm("vm-self", mem_mib=16, mode="self")
        w.start_vmm("vm-two", mem_mib=16, ram_fds=2)
        ids = ["vm-send", "vm-self", "vm-two"]
        expected_bytes = {"vm-send": 16 << 20, "vm-self": 16 << 20, "vm-two": 32 << 20}
        expected_fds = {"vm-send": 2, "vm-self": 2, "vm-two": 3}  # RAM memfds + vmstate

        st = w.status()
        self.assertEqual(st["state"], "idle", st)
        self.assertEqual(st["vmms"].get("registered"), 3, st)
        boot = w.fake_state()["boot"]

        # --- prepare
        image = w.make_kernel_image()
        prep = self.assertCtlOk(w.ctl("prepare", image))
        self.assertEqual(prep["state"], "prepared", prep)
        self.assertEqual(prep["vmms"], 3, prep)
        update_id = prep["update_id"]
        for vm_id in ids:
            ev = w.vmms[vm_id].wait_event("prepared")
            self.assertEqual(ev["update_id"], update_id, ev)
            self.assertEqual(ev["fds"], expected_fds[vm_id], ev)

        fk = w.fake_state()
        self.assertIsNotNone(fk["kexec"], fk)
        cmdline = fk["kexec"]["cmdline"].rstrip("\0")
        words = cmdline.split()
        self.assertIn("liveupdate=on", words, fk)
        self.assertIn("kho=on", words, fk)
        self.assertEqual(cmdline, prep["cmdline"], "the daemon reports the line it loaded")
        names = sorted(s["name"] for s in fk["sessions"])
        self.assertEqual(len(names), 4, f"one session per VM plus the daemon's own: {fk}")
        for s in fk["sessions"]:
            self.assertFalse(s["incoming"], s)
        per_vm = {s["name"]: len(s["files"]) for s in fk["sessions"]}
        for vm_id in ids:
            match = [n for n in per_vm if n.endswith("." + vm_id)]
            self.assertEqual(len(match), 1, f"session of {vm_id}: {names}")
            self.assertEqual(per_vm[match[0]], expected_fds[vm_id], fk)
        st = w.status()
        self.assertEqual(st["state"], "prepared", st)
        self.assertEqual(st["kernel"]["image"], image, st)

        # --- commit: the daemon answers, then dies in reboot()
        com = self.assertCtlOk(w.ctl("commit"))
        self.assertEqual(com["state"], "rebooting", com)
        self.assertEqual(com["update_id"], update_id, com)
        self.assertGreater(com["freeze_us"], 0, com)
        for vm_id in ids:
            fr = w.vmms[vm_id].wait_event("frozen")
            self.assertEqual(fr["bytes"], expected_bytes[vm_id], fr)

        # --- the kexec
        new = w.simulate_reboot(boot)
        fk = w.fake_state()
        self.assertIsNone(fk["kexec"], "the image is consumed by the kexec")

        for vm_id in ids:
            v = new[vm_id]
            reg = v.wait_event("registered")
            self.assertTrue(reg["restore"], f"{vm_id} was not told to restore: {reg}")
            res = v.wait_event("restored")
            self.assertEqual(res["update_id"], update_id, res)
            self.assertEqual(res["verified_bytes"], expected_bytes[vm_id], res)
            self.assertTrue(res["checksum_ok"], res)
            v.wait_event("resumed")
            self.assertEqual(v.find("error"), [], v.events)

        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        self.assertEqual(st["vmms"].get("registered"), 3, st)

        rep = self.assertCtlOk(w.ctl("report"))["report"]
        self.assertEqual(rep["update_id"], update_id, rep)
        self.assertEqual(rep["outcome"], "success", rep)
        self.assertIsNone(rep["error"], rep)
        self.assertEqual(rep["kernel"]["image"], image, rep)
        self.assertIn("liveupdate=on", rep["kernel"]["cmdline"].split(), rep)
        self.assertIsInstance(rep["blackout_us"], int, rep)
        self.assertGreater(rep["blackout_us"], 0, rep)
        by_id = self.report_vmms(rep)
        self.assertEqual(sorted(by_id), sorted(ids), rep)
        for vm_id in ids:
            r = by_id[vm_id]
            self.assertEqual(r["outcome"], "resumed", r)
            self.assertEqual(r["fds"], expected_fds[vm_id], r)
            for k in ("freeze_requested_us", "frozen_us", "restored_us", "resumed_us"):
                self.assertIsInstance(r[k], int, f"{k} of {vm_id}: {r}")
                self.assertGreater(r[k], 0, f"{k} of {vm_id}: {r}")
            self.assertLessEqual(r["freeze_requested_us"], r["frozen_us"], r)
            self.assertLessEqual(r["frozen_us"], r["restored_us"], r)
            self.assertLessEqual(r["restored_us"], r["resumed_us"], r)
        phases = [p["name"] for p in rep["phases"]]
        for name in ("prepare", "freeze", "reboot", "restore", "finish"):
            self.assertIn(name, phases, rep)

        # every session finished and closed; nothing loaded; device closed
        self.assertNothingPending()

        # the VMs run on after the update: a SIGTERM stops them cleanly (exit 0)
        for vm_id in ids:
            self.assertTrue(new[vm_id].running(), vm_id)


if __name__ == "__main__":
    harness.main()
