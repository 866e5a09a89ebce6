# SPDX-License-Identifier: LGPL-2.1-or-later
"""VMMs that misbehave or come and go around an update, and what it costs.

- a VMM asking to preserve what must be refused (a pipe: no LUO handler;
  a token already taken) gets the kernel's errno and nothing else changes;
- a VMM that crashes after taking its files back, before it resumed, gets
  its session again when it restarts, and its memory is intact;
- a VMM that registers after prepare is carried over too;
- a VM that was released starts over as a new VM when its VMM returns.
"""

import errno

import harness


class TestVmmLifecycle(harness.WorldTestCase):

    def test_bad_preserves_are_refused(self):
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-send", mem_mib=8, fault="bad-preserves")
        w.start_vmm("vm-self", mem_mib=8, mode="self", fault="bad-preserves")
        w.start_vmm("vm-good", mem_mib=8)
        boot = w.fake_state()["boot"]

        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertEqual(prep["vmms"], 3, prep)
        for vm_id in ("vm-send", "vm-self"):
            v = w.vmms[vm_id]
            v.wait_event("prepared")
            refused = {e["what"]: e["error"] for e in v.find("refused")}
            self.assertEqual(refused.get("pipe"), -errno.ENOENT, v.events)
            self.assertEqual(refused.get("duplicate-token"), -errno.EEXIST, v.events)
            self.assertEqual(v.find("error"), [], v.events)

        # the refused files left no trace: exactly RAM (token 1) and vmstate (0x10000)
        sessions = harness.sessions_by_vm(w.fake_state())
        for vm_id in ("vm-send", "vm-self", "vm-good"):
            tokens = sorted(f["token"] for f in sessions[vm_id]["files"])
            self.assertEqual(tokens, [1, 0x10000], sessions[vm_id])
        self.assertEqual(w.vmm_list()["vm-send"]["fds"], 2)

        self.assertCtlOk(w.ctl("commit"))
        new = w.simulate_reboot(boot)
        for vm_id, v in new.items():
            self.assertRestoredIntact(v, prep["update_id"], 8 << 20)
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        self.assertNothingPending()

    def test_crash_after_restore_gets_the_session_again(self):
        w = self.world
        w.start_daemon()
        # the fault only acts after the kexec: take the files, then exit before RESUMED
        w.start_vmm("vm-crash", mem_mib=8, fault="exit-after-restore")
        w.start_vmm("vm-ok", mem_mib=8)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))

        new = w.simulate_reboot(boot)
        self.assertRestoredIntact(new["vm-ok"], prep["update_id"], 8 << 20)
        crashed = new["vm-crash"]
        crashed.allowed_exit.add(1)
        crashed.wait_event("fault")
        self.assertEqual(crashed.wait_exit(), 1)
        st = w.wait_vmm_state("vm-crash", "restored")
        self.assertFalse(st["connected"], st)
        self.assertEqual(w.status()["state"], "finishing")

        # the same VM, started again: its session (and memory) is still there
        again = w.start_vmm("vm-crash", mem_mib=8, wait=False)
        self.assertRestoredIntact(again, prep["update_id"], 8 << 20)
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        rep = w.report()
        self.assertEqual(self.report_vmms(rep)["vm-crash"]["outcome"], "resumed", rep)
        self.assertNothingPending()

    def test_late_joiner_is_carried_over(self):
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-early", mem_mib=8)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))

        late = w.start_vmm("vm-late", mem_mib=8)
        ev = late.wait_event("prepared")
        self.assertEqual(ev["update_id"], prep["update_id"], ev)
        st = w.wait_state("prepared")
        self.assertEqual(st["vmms"].get("prepared"), 2, st)
        self.assertEqual(len(harness.sessions_by_vm(w.fake_state())), 2)

        self.assertCtlOk(w.ctl("commit"))
        new = w.simulate_reboot(boot)
        for v in new.values():
            self.assertRestoredIntact(v, prep["update_id"], 8 << 20)
        self.assertEqual(w.wait_state("idle")["last_outcome"], "success")

    def test_released_vm_starts_over(self):
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-a", mem_mib=8)
        w.start_vmm("vm-gone", mem_mib=8)
        boot = w.fake_state()["boot"]
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))
        new = w.simulate_reboot(boot, restart_vmms=["vm-a"])
        new["vm-a"].wait_event("resumed")

        self.assertEqual(w.vmm_list()["vm-gone"]["state"], "awaiting")
        self.assertCtlOk(w.ctl("release", "vm-gone"))
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "failed", st)
        self.assertNothingPending()

        back = w.start_vmm("vm-gone", mem_mib=8)
        self.assertFalse(back.wait_event("registered")["restore"])
        self.assertEqual(w.vmm_list()["vm-gone"]["state"], "registered")


if __name__ == "__main__":
    harness.main()
