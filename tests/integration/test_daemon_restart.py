# SPDX-License-Identifier: LGPL-2.1-or-later
"""A daemon restart (SIGKILL, then the service manager starts it again with
its fd store) in every phase of an update, under fake_systemd.FakeSystemd
as PID 1. The documented outcomes (README, "Limits and known gaps"):

- preparing: rolled back; every VMM hears THAW (from its library, which
  reconnected and was not told the update goes on) and runs on;
- prepared: picked up; the VMMs reconnect by themselves, commit works and
  the update completes across the (simulated) kexec;
- freezing, and frozen before reboot(): rolled back; every VMM, frozen
  or not, is thawed and runs on;
- restoring, after the kexec: picked up; a VMM that had resumed stays
  connected through its library, the absent one is restored later.

Every VM's memory is checked byte for byte (the refvmm verifies on
SIGUSR1, on THAW and on RESTORE), the kernel keeps exactly what it should,
and the restarted daemon holds as many fds as its predecessor did in the
same situation.

Each scenario that passes records what it observed (the phase, the fault,
what became of the update and of the VMs) in the words of README's "Fault
matrix"; when every scenario ran, the table is written to
$FAULT_MATRIX_DAEMON_OUT and README's daemon table (between the
fault-matrix-daemon markers) must be that same table
(tests/integration/update-fault-matrix rewrites it).
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

import fake_systemd
import fault_table
import harness

#: The VMMs' libraries look for the restarted daemon this long.
os.environ["LIVEUPDATE_VMM_RECONNECT_TIMEOUT_MS"] = str(int(harness.TIMEOUT * 1000))


OUT = os.environ.get("FAULT_MATRIX_DAEMON_OUT", "fault-matrix-daemon.md")

#: Every scenario, in the table's order, and its phase in the table's words.
PHASE_TEXT = {
    "preparing": "preparing (one VMM of three still preserving)",
    "prepared": "prepared (every VMM prepared)",
    "prepared-image-lost": "prepared, kexec image unloaded while it was down",
    "freezing": "freezing (one VMM of three not frozen)",
    "frozen": "frozen (every VM frozen), inside reboot()",
    "restoring": "restoring (after the kexec, one VM of two back)",
}

#: scenario -> (fault, the update, the VMs) observed, for the scenarios that passed
RESULTS: dict[str, tuple[str, str, str]] = {}


def render_table(results: dict[str, tuple[str, str, str]]) -> str:
    head = ("phase of the daemon", "fault", "the update", "the VMs")
    return fault_table.render(head, ((PHASE_TEXT[p], *results[p]) for p in PHASE_TEXT))


def fd_list(pid: int) -> list[str]:
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


class DaemonRestartTest(fake_systemd.ServiceManagerTestCase):

    def assertFds(self, expected: int, what: str) -> None:
        """The daemon holds expected fds, once it has seen the test's own API
        connections close (it notices a close on its next loop turn; a
        bounded 10 ms poll, like the harness's wait for the fake kernel)."""
        w = self.world
        end = harness.deadline(5)
        while harness.fd_count(w.daemon.pid) > expected and harness.remaining(end) > 0:
            time.sleep(0.01)
        self.assertLessEqual(harness.fd_count(w.daemon.pid), expected,
                             f"{what}: {fd_list(w.daemon.pid)}")

    def settled_fds(self) -> int:
        """The daemon's fd count once it stopped changing (the test's API
        connections closed and seen): the same three times, 20 ms apart."""
        pid = self.world.daemon.pid
        end = harness.deadline(5)
        seen = [harness.fd_count(pid)]
        while harness.remaining(end) > 0 and (len(seen) < 3 or len(set(seen[-3:])) > 1):
            time.sleep(0.02)
            seen.append(harness.fd_count(pid))
        return seen[-1]

    def setUp(self) -> None:
        #: what the test saw happen to the daemon: its death, its restart
        self.fault: list[str] = []
        #: vm_id -> its VM's fate, once checked
        self.fates: dict[str, str] = {}
        super().setUp()

    # -- helpers ---------------------------------------------------------------

    def start_service(self, fs: fake_systemd.FakeSystemd, *args: str) -> harness.Daemon:
        d = super().start_service(fs, *args)
        self.world.wait_daemon_ready()
        return d

    def start_vmms(self, vm_ids: list[str], **kw) -> None:
        for i, vm_id in enumerate(vm_ids):
            self.world.start_vmm(vm_id, mem_mib=4, mode="self" if i % 2 else None,
                                 **kw.get(vm_id, {}))

    def crash(self) -> None:
        """SIGKILL the daemon: no cleanup runs."""
        rc = self.world.daemon.kill()
        self.assertEqual(rc, -signal.SIGKILL, "the daemon's exit")
        self.fault.append(f"daemon {signal.Signals(-rc).name}")

    def restart(self, fs: fake_systemd.FakeSystemd) -> harness.Daemon:
        """The service manager starts the daemon again, handing it what its
        predecessor left in the fd store."""
        stored = fs.stored_names()
        d = self.start_service(fs)
        self.fault.append("restarted by systemd with its fd store" if stored
                          else "restarted by systemd, its fd store empty")
        return d

    def record(self, scenario: str, update: str) -> None:
        """The scenario's row: the fault and the fates seen (every VM's; the
        same for all, or each named)."""
        self.assertIn(scenario, PHASE_TEXT)
        self.assertEqual(len(self.fault), 2, self.fault)
        self.assertEqual(sorted(self.fates), sorted(self.world.vmms), self.fates)
        fates = list(dict.fromkeys(self.fates.values()))
        vms = fates[0] if len(fates) == 1 else \
            "; ".join(f"{v}: {f}" for v, f in sorted(self.fates.items()))
        RESULTS[scenario] = (", ".join(self.fault), update, vms)

    def in_background(self, *args: str) -> tuple[threading.Thread, list]:
        """liveupdatectl ARGS in a thread (prepare and commit wait)."""
        out: list = []
        t = threading.Thread(target=lambda: out.append(self.world.ctl(*args)), daemon=True)
        t.start()
        return t, out

    def wait_connected(self, vm_ids: list[str]) -> dict:
        """Until the daemon lists every vm_id as connected (woken by its events)."""
        w = self.world
        end = harness.deadline(None)
        with w.subscribe() as sub:
            while True:
                lst = w.vmm_list()
                if all(lst.get(v, {}).get("connected") for v in vm_ids):
                    return lst
                if sub.read(harness.remaining(end)) is None or harness.remaining(end) <= 0:
                    raise harness.HarnessError(f"VMMs did not reconnect: {lst}")

    def assertAllIntact(self, vm_ids: list[str]) -> None:
        for vm_id in vm_ids:
            v = self.world.vmms[vm_id]
            self.assertTrue(v.running(), f"{vm_id} exited: {v.names()}")
            self.assertVerifiedIntact(v, 4 << 20)

    def assertRolledBack(self, prep: dict, was: str, vm_ids: list[str], baseline: int,
                         next_update: bool = True) -> str:
        """The restarted daemon rolled the update back: idle, report aborted
        naming the restart, nothing left in the kernel or the fd store, every
        VMM thawed (memory verified) and running, no fd more than before.
        Returns the update's fate in the table's words."""
        w = self.world
        st = w.status()
        self.assertEqual(st["state"], "idle", st)
        self.assertEqual(st["last_outcome"], "aborted", st)
        self.assertNotIn("held_sessions", st, st)
        rep = w.report()
        self.assertEqual(rep["update_id"], prep["update_id"], rep)
        self.assertEqual(rep["outcome"], "aborted", rep)
        self.assertIn("restarted", rep["error"]["message"], rep)
        self.assertIn(was, rep["error"]["message"], rep)
        m = re.search(r"restarted while the update was (\w+)", rep["error"]["message"])
        self.assertIsNotNone(m, rep)
        update = f"rolled back by the restarted daemon (it was {m[1]}): {rep['outcome']}"
        for vm_id in vm_ids:
            self.assertThawedIntact(w.vmms[vm_id])
        self.wait_connected(vm_ids)
        self.assertNothingPending()
        self.assertFalse(os.path.exists(os.path.join(w.state_dir, "update.json")))
        self.assertFds(baseline, "the restarted daemon holds more fds than the first one did")
        self.assertAllIntact(vm_ids)
        self.fates.update((vm_id, fault_table.THAWED) for vm_id in vm_ids)
        if not next_update:
            return update
        # and the next update goes
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("abort"))
        return update + "; the next update goes"

    # -- the phases -----------------------------------------------------------------

    def test_prepared_is_picked_up(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b", "vm-c"]
        fs = self.start_manager("systemd-boot0")
        self.start_service(fs)
        self.start_vmms(vm_ids)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        for vm_id in vm_ids:
            w.vmms[vm_id].wait_event("prepared")
        before = self.settled_fds()
        before_list = fd_list(w.daemon.pid)
        kernel_before = w.fake_state()
        self.assertIsNotNone(kernel_before["kexec"])

        self.crash()
        # the kernel keeps every session: systemd holds them
        after_crash = w.fake_state()
        self.assertEqual(after_crash["sessions"], kernel_before["sessions"])

        self.restart(fs)
        st = w.status()
        self.assertEqual(st["state"], "prepared", st)
        picked = st["state"]
        self.assertEqual(st["update_id"], prep["update_id"], st)
        self.assertNotIn("held_sessions", st, st)
        lst = self.wait_connected(vm_ids)
        for vm_id in vm_ids:
            self.assertEqual(lst[vm_id]["state"], "prepared", lst)
            v = w.vmms[vm_id]
            self.assertTrue(v.running(), v.names())
            self.assertEqual(v.find("thawed"), [], f"{vm_id} was thawed: {v.names()}")
            self.assertEqual(v.find("hangup"), [], v.names())
        self.assertFds(before, f"the restarted daemon's fds differ from {before_list}")
        fk = w.fake_state()
        self.assertEqual(fk["sessions"], kernel_before["sessions"])
        self.assertEqual(fk["kexec"], kernel_before["kexec"])
        self.assertTrue(os.path.exists(os.path.join(w.state_dir, "update.json")))
        self.assertAllIntact(vm_ids)

        res = self.assertCtlOk(w.ctl("commit"))
        self.assertEqual(res["update_id"], prep["update_id"], res)
        boots: list = []

        def boot_service(args: list[str]) -> None:
            fs.close()
            nfs = self.start_manager("systemd-boot1")
            boots.append(nfs)
            self.start_service(nfs, *args)

        new = w.simulate_reboot(boot, start_daemon=boot_service)
        for vm_id in vm_ids:
            r = new[vm_id].wait_event("restored")
            self.assertEqual(r["verified_bytes"], 4 << 20, r)
            self.assertTrue(r["checksum_ok"], r)
            new[vm_id].wait_event("resumed")
            self.assertVerifiedIntact(new[vm_id], 4 << 20)
            self.fates[vm_id] = fault_table.RESTORED
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        self.assertEqual(w.report()["update_id"], prep["update_id"])
        self.assertNothingPending()
        self.assertFalse(os.path.exists(os.path.join(w.state_dir, "update.json")))
        self.record("prepared", f"picked up ({picked}): the VMMs reconnect, commit completes")

    def test_prepared_without_kexec_image_is_loaded_again(self):
        """The kernel lost the image while the daemon was down: the restarted
        daemon sees /sys/kernel/kexec_loaded say 0 and loads it again."""
        w = self.world
        vm_ids = ["vm-a"]
        fs = self.start_manager()
        self.start_service(fs)
        self.start_vmms(vm_ids)
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        w.vmms["vm-a"].wait_event("prepared")
        image = w.fake_state()["kexec"]
        self.crash()
        # what kexec -u would do, through the shim: kexec_file_load(UNLOAD)
        nr = {"x86_64": 320, "aarch64": 294}.get(platform.machine())
        if nr is None:
            self.skipTest("kexec_file_load's number on this architecture is not known here")
        subprocess.run([sys.executable, "-c",
                        f"import ctypes; assert ctypes.CDLL(None).syscall({nr}, -1, -1, 0, None, 1) == 0"],
                       env=w.c_env(), check=True, timeout=harness.TIMEOUT)
        self.assertIsNone(w.fake_state()["kexec"])
        self.restart(fs)
        st = w.status()
        self.assertEqual(st["state"], "prepared")
        self.assertEqual(w.fake_state()["kexec"], image)
        self.wait_connected(vm_ids)
        self.assertCtlOk(w.ctl("abort"))
        self.assertThawedIntact(w.vmms["vm-a"])
        self.assertNothingPending()
        self.assertAllIntact(vm_ids)
        self.fates["vm-a"] = fault_table.THAWED
        outcome = w.report()["outcome"]
        self.record("prepared-image-lost", f"picked up ({st['state']}), the kexec image loaded "
                    f"again; `abort`: {outcome}")

    def test_preparing_is_rolled_back(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b", "vm-slow"]
        fs = self.start_manager()
        self.start_service(fs)
        self.start_vmms(vm_ids, **{"vm-slow": {"fault": "hang-at-prepare"}})
        baseline = self.settled_fds()
        t, out = self.in_background("prepare", w.make_kernel_image())
        st = w.wait_state("preparing")
        w.vmms["vm-a"].wait_event("prepared")
        w.vmms["vm-b"].wait_event("prepared")
        prep = {"update_id": st["update_id"]}

        self.crash()
        t.join(harness.TIMEOUT)
        self.assertEqual(out[0].rc, harness.CTL_UNREACHABLE, str(out[0]))
        self.restart(fs)
        # vm-slow would hold the next prepare up: no next update here
        update = self.assertRolledBack(prep, "preparing", vm_ids, baseline, next_update=False)
        self.record("preparing", update)

    def test_freezing_is_rolled_back(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b", "vm-stuck"]
        fs = self.start_manager()
        self.start_service(fs)
        self.start_vmms(vm_ids, **{"vm-stuck": {"fault": "ignore-freeze"}})
        baseline = self.settled_fds()
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        t, out = self.in_background("commit", "--freeze-timeout", str(int(harness.TIMEOUT * 3000)))
        w.vmms["vm-a"].wait_event("frozen")
        w.vmms["vm-b"].wait_event("frozen")
        self.assertEqual(w.status()["state"], "freezing")

        self.crash()
        t.join(harness.TIMEOUT)
        self.assertEqual(out[0].rc, harness.CTL_UNREACHABLE, str(out[0]))
        self.restart(fs)
        self.record("freezing", self.assertRolledBack(prep, "freezing", vm_ids, baseline))

    def test_frozen_before_reboot_is_rolled_back(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager()
        self.start_service(fs)
        self.start_vmms(vm_ids)
        baseline = self.settled_fds()
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        # the daemon will hang inside reboot(), past its last word, before the jump
        w.fake("stall-reboot", "1")
        t, out = self.in_background("commit")
        for vm_id in vm_ids:
            w.vmms[vm_id].wait_event("frozen")
        # The last FROZEN is on its way to the daemon, then the daemon is in
        # reboot(): asked of the fake kernel (a bounded 10 ms poll), as a
        # daemon stuck in reboot() answers nothing, not even a subscribe.
        end = harness.deadline(None)
        fk = w.fake_state()
        while fk["stalled_reboots"] == 0:
            if harness.remaining(end) <= 0:
                raise harness.HarnessError(f"the daemon did not call reboot(): {w.status()}")
            time.sleep(0.01)
            fk = w.fake_state()
        self.assertEqual(fk["stalled_reboots"], 1)

        self.crash()
        t.join(harness.TIMEOUT)
        res = self.assertCtlOk(out[0])
        self.assertEqual(res["state"], "rebooting", res)
        self.restart(fs)
        update = self.assertRolledBack(prep, "freezing", vm_ids, baseline)
        self.assertEqual(w.fake_state()["boot"], boot, "no kexec happened")
        self.record("frozen", update + "; no kexec")

    def test_restoring_is_picked_up(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager("systemd-boot0")
        self.start_service(fs)
        self.start_vmms(vm_ids)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))
        boots: list = []

        def boot_service(args: list[str]) -> None:
            fs.close()
            nfs = self.start_manager("systemd-boot1")
            boots.append(nfs)
            self.start_service(nfs, *args)

        new = w.simulate_reboot(boot, start_daemon=boot_service, restart_vmms=["vm-a"])
        nfs = boots[0]
        new["vm-a"].wait_event("resumed")
        self.assertEqual(w.status()["state"], "restoring")

        r = new["vm-a"].wait_event("restored")
        self.assertEqual(r["verified_bytes"], 4 << 20, r)
        self.assertTrue(r["checksum_ok"], r)

        self.crash()
        self.restart(nfs)
        st = w.status()
        self.assertEqual(st["state"], "restoring", st)
        self.assertEqual(st["update_id"], prep["update_id"], st)
        picked = st["state"]
        # vm-a's library found the new daemon by itself
        self.wait_connected(["vm-a"])
        self.assertEqual(w.vmm_list()["vm-a"]["state"], "registered")
        self.assertEqual(new["vm-a"].find("restored", lambda e: True).__len__(), 1)

        vm_b = w.start_vmm("vm-b", mem_mib=4, mode="self", wait=False)
        r = vm_b.wait_event("restored")
        self.assertEqual(r["verified_bytes"], 4 << 20, r)
        self.assertTrue(r["checksum_ok"], r)
        vm_b.wait_event("resumed")
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        self.assertNothingPending()
        self.assertAllIntact(vm_ids)
        self.fates.update((vm_id, fault_table.RESTORED) for vm_id in vm_ids)
        self.record("restoring", f"picked up ({picked}): the resumed VMM stays, "
                    "completes once the absent one is back")


def main() -> int:
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    if not prog.result.wasSuccessful():
        return 1
    if len(RESULTS) != len(PHASE_TEXT):
        print(f"daemon restarts: {len(RESULTS)} of {len(PHASE_TEXT)} scenarios ran; "
              "no table written", file=sys.stderr)
        return 0
    table = render_table(RESULTS)
    fault_table.write(OUT, table, "daemon restarts")
    if not fault_table.check_readme(fault_table.DAEMON, table, "daemon restarts"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
