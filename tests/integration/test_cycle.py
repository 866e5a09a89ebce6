# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 1: a full live update cycle under three running VMs.

prepare (liveupdatectl, default command line) -> commit -> the kexec (the
daemon dies inside reboot(), the fake kernel moves to the next boot) -> a
new daemon and new VMMs with the same ids -> every VMM gets its memory
back, verifies every byte, resumes -> the daemon finishes every session and
goes idle with a success report.

The blackout is measured on the TSC, which the fake kernel's "kexec" leaves
as it is, as a real one does: the figures are real, so the checks are on
their consistency (phases present, in order, adding up; every VMM's own
figure within the daemon's), never on values.
"""

import harness

HAVE_TSC = harness.HAVE_TSC
TIMELINE_PHASES = ("freeze_barrier_us", "kexec_boot_us", "restore_us", "handback_us")


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
        # a running VM's memory checks out on demand, and the check costs it nothing
        self.assertVerifiedIntact(w.vmms["vm-two"], expected_bytes["vm-two"])

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
        frozen_tsc = {}
        for vm_id in ids:
            fr = w.vmms[vm_id].wait_event("frozen")
            self.assertEqual(fr["bytes"], expected_bytes[vm_id], fr)
            frozen_tsc[vm_id] = fr["tsc"]
            if HAVE_TSC:
                self.assertIsInstance(fr["tsc"], int, fr)
                self.assertGreater(fr["tsc"], 0, fr)
            else:
                self.assertIsNone(fr["tsc"], fr)

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
            self.checkResumed(v.wait_event("resumed"), frozen_tsc[vm_id])
            writing = v.wait_event("writing")
            self.assertEqual(writing["after"], "resume", writing)
            self.assertGreater(writing["words"], 0, writing)
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
        self.checkTimeline(rep, {vm_id: new[vm_id].find("resumed")[0] for vm_id in ids})
        human = w.ctl("report", json_output=False)
        self.assertEqual(human.rc, harness.CTL_OK, human)
        if HAVE_TSC:
            for row in ("freeze barrier", "kexec and boot", "restore", "handback", "= blackout"):
                self.assertIn(row, human.stdout, human)

        # every session finished and closed; nothing loaded; device closed
        self.assertNothingPending()

        # the VMs run on after the update: their memory checks out on demand
        # and their writer goes on after each check; a SIGTERM stops them
        # cleanly (exit 0)
        for vm_id in ids:
            for _ in range(2):
                ev = self.assertVerifiedIntact(new[vm_id], expected_bytes[vm_id])
                self.assertFalse(ev["frozen"], ev)
            self.assertTrue(new[vm_id].running(), vm_id)

    def checkResumed(self, ev: dict, frozen_tsc: int | None) -> None:
        """A restored refvmm's own blackout: its freeze stamp came through
        the vmstate, and its figure is its own ticks at its own rate."""
        if not HAVE_TSC:
            for k in ("frozen_tsc", "resumed_tsc", "tsc_hz", "blackout_us"):
                self.assertIsNone(ev[k], ev)
            return
        self.assertEqual(ev["frozen_tsc"], frozen_tsc, f"the frozen process's stamp: {ev}")
        for k in ("resumed_tsc", "tsc_hz", "blackout_us"):
            self.assertIsInstance(ev[k], int, ev)
            self.assertGreater(ev[k], 0, ev)
        self.assertGreater(ev["resumed_tsc"], ev["frozen_tsc"], ev)
        want = (ev["resumed_tsc"] - ev["frozen_tsc"]) * 1_000_000 / ev["tsc_hz"]
        self.assertLessEqual(abs(ev["blackout_us"] - want), 1, ev)

    def checkTimeline(self, rep: dict, resumed: dict[str, dict]) -> None:
        """The report's blackout on the TSC: every phase there, none
        negative, adding up to the blackout, which is the top-level figure;
        every VM's own within it."""
        tl = rep.get("timeline", "missing")
        if not HAVE_TSC:
            self.assertIsNone(tl, rep)
            return
        self.assertIsInstance(tl, dict, f"no timeline in the report: {rep}")
        self.assertEqual(tl["clock"], "tsc", tl)
        self.assertIsInstance(tl["tsc_hz"], int, tl)
        self.assertGreater(tl["tsc_hz"], 0, tl)
        for k in TIMELINE_PHASES + ("blackout_us",):
            self.assertIsInstance(tl[k], int, f"{k}: {tl}")
            self.assertGreaterEqual(tl[k], 0, f"{k}: {tl}")
        # a daemon started and read its sessions back: neither takes no time
        self.assertGreater(tl["kexec_boot_us"], 0, tl)
        self.assertGreater(tl["restore_us"], 0, tl)
        total = sum(tl[k] for k in TIMELINE_PHASES)
        # each phase is rounded to the µs, at most one off each
        self.assertLessEqual(abs(total - tl["blackout_us"]), len(TIMELINE_PHASES), tl)
        self.assertEqual(rep["blackout_us"], tl["blackout_us"],
                         "the top-level blackout is the TSC's when there is a timeline")

        # The fake kexec leaves CLOCK_REALTIME alone too, so here (not on a real
        # machine) both clocks must tell the same blackout: not to the µs (the
        # realtime stamps are taken apart from the TSC's, and a loaded machine
        # under the sanitizers can stall the daemon between the two for a
        # couple of hundred ms) but not off by a factor either.
        by_id = self.report_vmms(rep)
        realtime = (max(r["resumed_us"] for r in by_id.values()) -
                    min(r["freeze_requested_us"] for r in by_id.values()))
        self.assertLessEqual(abs(realtime - tl["blackout_us"]),
                             300_000 + tl["blackout_us"] // 4,
                             f"CLOCK_REALTIME says {realtime} us: {tl}")

        for vm_id, r in by_id.items():
            self.assertIsInstance(r["blackout_us"], int, r)
            self.assertGreater(r["blackout_us"], 0, r)
            self.assertLessEqual(r["blackout_us"], tl["blackout_us"], r)
            self.assertIsInstance(r["handback_us"], int, r)
            self.assertGreaterEqual(r["handback_us"], 0, r)
            self.assertLess(r["handback_us"], r["blackout_us"], r)
            # the VMM froze after the daemon asked and ran before it told the
            # daemon: its own blackout lies within the daemon's figure for it
            # (up to the two processes' calibrations: 1 % and 1 ms)
            own = resumed[vm_id]["blackout_us"]
            self.assertLessEqual(own, r["blackout_us"] + r["blackout_us"] // 100 + 1000,
                                 f"{vm_id}: its own {resumed[vm_id]}, the report's {r}")
        self.assertEqual(max(r["blackout_us"] for r in by_id.values()), tl["blackout_us"], rep)


if __name__ == "__main__":
    harness.main()
