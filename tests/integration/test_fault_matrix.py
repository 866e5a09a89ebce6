# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VMM fault matrix: one VMM of three misbehaves at each phase of an update.

The promise: whatever fails, no guest memory is lost and every VM ends up
either running on the old kernel or restored on the new one. For every
phase a VMM goes through (tests/refvmm --help, "Faults") and every way of
failing there (crash: SIGKILL; hang: stops reading its socket; disconnect:
closes its socket and runs on with its RAM), one cell runs an update with
two well-behaved VMMs (one preserving through the daemon, one into its
session itself) and the faulty one, and observes:

- the update: aborted (and why, from the report), or completed;
- the other two: thawed, or restored after the kexec; either way every
  byte of their RAM checked (THAW or RESTORE, and SIGUSR1's "verified");
- the faulty VM: dead by its own hand, running on (or left frozen by its own
  disconnect) on the old kernel with its RAM checked, or, after the kexec,
  its memory held by the daemon until it is started again with its id,
  when it gets the memory back, checked;
- the daemon leaked nothing: with the same VMMs connected and idle, it has
  as many fds as before the cell, and its VmRSS is within RSS_SLACK_KIB.

What was observed is compared with EXPECTED (the daemon's documented
behaviour, README's failure table) and written as a markdown table to
$FAULT_MATRIX_OUT; when every cell ran, README's "Fault matrix" section
must hold that same table (tests/integration/update-fault-matrix rewrites
it), so the table cannot go stale.

Only the request a hang is meant to outlast gets a short deadline
(PREPARE_TIMEOUT_S, FREEZE_TIMEOUT_MS), so those cells cost seconds, not
minutes, and no other request can time out on a slow machine.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
import unittest
from dataclasses import dataclass

import fault_table
import harness

PHASES = ("registering", "preserving", "prepared", "freezing", "frozen", "restoring", "restored")
ACTIONS = ("crash", "hang", "disconnect")
#: phases after the kexec: the faulty VMM is the restarted one
AFTER_KEXEC = ("restoring", "restored")

#: The deadlines of the faulty request, when the cell's fault is meant to
#: run into one (a hang before FROZEN); every other request has the
#: daemon's generous ones, so that a slow sanitized run cannot time out a
#: good VMM.
PREPARE_TIMEOUT_S = 3
FREEZE_TIMEOUT_MS = 3000
GENEROUS_TIMEOUT_MS = 60000
MEM_MIB = 4
GOOD = ("vm-a", "vm-b")
BAD = "vm-bad"

#: How much more VmRSS the daemon may have after a cell than before it, in
#: KiB: allocator slack, not a leak; under AddressSanitizer more, as it keeps
#: freed memory in quarantine (a cell grows it by about 2 MiB). Leaks of fds
#: are caught exactly (the counts must be equal); unreachable heap by
#: LeakSanitizer when the daemon exits.
RSS_SLACK_KIB = 512
RSS_SLACK_ASAN_KIB = 4096

#: What a VMM may report as an error in an aborted update: a preserve or
#: PREPARE_DONE that crossed the abort (the session is gone: EBUSY).
RACED_ABORT = ("preserving ", "prepare done: ")

OUT = os.environ.get("FAULT_MATRIX_OUT", "fault-matrix.md")


@dataclass(frozen=True)
class Outcome:
    update: str
    others: str
    faulty: str


# What each outcome means, in the words of the table.
ABORT_LEFT = "aborted: vmm-failed, it disconnected"
ABORT_PREPARE_DEADLINE = "aborted at the prepare deadline (vmm-failed)"
ABORT_FREEZE_DEADLINE = "aborted at the freeze deadline (vmm-failed)"
DONE_WITHOUT = "completes without it"
DONE = "completes"
DONE_WHEN_BACK = "completes once it is back"
THAWED = fault_table.THAWED
RESTORED = fault_table.RESTORED
DEAD = "dead (its own crash)"
RUNS_ON = "runs on, RAM verified"
STAYS_FROZEN = "stays frozen (cut off from THAW), RAM verified"
NOT_CARRIED = "runs on unregistered, RAM verified; the kexec ends it"
RESTARTED = "restarted with its id: restored, RAM verified"
HELD = "RAM held; " + RESTARTED
HELD_HUNG = "RAM held, `release` refused (connected); killed, " + RESTARTED
KEPT = "keeps the RAM it took (verified); "
HELD_KEPT = KEPT + HELD
HELD_HUNG_KEPT = KEPT + HELD_HUNG

#: The daemon's behaviour (README, "How it works" and its failure table):
#: before the kexec a VMM that is lost or late aborts the update, which
#: thaws everyone, except one lost after FROZEN: its state is complete in
#: its session, so the update goes on and carries it; after the kexec, a VMM
#: that is not back keeps its memory until it returns (or is released).
EXPECTED = {
    ("registering", "crash"): Outcome(DONE_WITHOUT, RESTORED, DEAD),
    ("registering", "hang"): Outcome(ABORT_PREPARE_DEADLINE, THAWED, RUNS_ON),
    ("registering", "disconnect"): Outcome(DONE_WITHOUT, RESTORED, NOT_CARRIED),
    ("preserving", "crash"): Outcome(ABORT_LEFT, THAWED, DEAD),
    ("preserving", "hang"): Outcome(ABORT_PREPARE_DEADLINE, THAWED, RUNS_ON),
    ("preserving", "disconnect"): Outcome(ABORT_LEFT, THAWED, RUNS_ON),
    ("prepared", "crash"): Outcome(ABORT_LEFT, THAWED, DEAD),
    ("prepared", "hang"): Outcome(ABORT_FREEZE_DEADLINE, THAWED, RUNS_ON),
    ("prepared", "disconnect"): Outcome(ABORT_LEFT, THAWED, RUNS_ON),
    ("freezing", "crash"): Outcome(ABORT_LEFT, THAWED, DEAD),
    ("freezing", "hang"): Outcome(ABORT_FREEZE_DEADLINE, THAWED, RUNS_ON),
    ("freezing", "disconnect"): Outcome(ABORT_LEFT, THAWED, RUNS_ON),
    ("frozen", "crash"): Outcome(DONE, RESTORED, RESTORED),
    ("frozen", "hang"): Outcome(DONE, RESTORED, RESTORED),
    ("frozen", "disconnect"): Outcome(DONE, RESTORED, RESTORED),
    ("restoring", "crash"): Outcome(DONE_WHEN_BACK, RESTORED, HELD),
    ("restoring", "hang"): Outcome(DONE_WHEN_BACK, RESTORED, HELD_HUNG),
    ("restoring", "disconnect"): Outcome(DONE_WHEN_BACK, RESTORED, HELD),
    ("restored", "crash"): Outcome(DONE_WHEN_BACK, RESTORED, HELD),
    ("restored", "hang"): Outcome(DONE_WHEN_BACK, RESTORED, HELD_HUNG_KEPT),
    ("restored", "disconnect"): Outcome(DONE_WHEN_BACK, RESTORED, HELD_KEPT),
}

PHASE_TEXT = {
    "registering": "registering (just connected)",
    "preserving": "preserving (on PREPARE)",
    "prepared": "prepared (PREPARE answered)",
    "freezing": "freezing (on FREEZE)",
    "frozen": "frozen (FROZEN sent, others not yet)",
    "restoring": "restoring (after the kexec)",
    "restored": "restored (before RESUMED)",
}

#: (phase, action) -> Outcome observed, for the cells that passed
RESULTS: dict[tuple[str, str], Outcome] = {}


def daemon_usage(w: harness.World) -> tuple[int, int]:
    """The daemon's open fds and VmRSS (KiB), quiescent: counted while one
    connection of ours is open, after two round trips on it, so that the
    daemon has seen every earlier connection close (sd-event dispatches
    what became ready first, first)."""
    pid = w.daemon.pid
    with w.api() as c:
        harness.result(c.call("status"))
        harness.result(c.call("status"))
        fds = harness.fd_count(pid)
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return fds, int(line.split()[1])
    raise harness.HarnessError(f"no VmRSS for pid {pid}")


def under_asan(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def classify_abort(rep: dict) -> str:
    """The update's end in the words of the table, from its report."""
    err = rep.get("error") or {}
    msg, code = err.get("message") or "", err.get("code")
    if "did not finish preserving" in msg:
        return f"aborted at the prepare deadline ({code})"
    if "did not freeze in time" in msg:
        return f"aborted at the freeze deadline ({code})"
    if "disconnected while" in msg:
        return f"aborted: {code}, it disconnected"
    return f"aborted: {code}: {msg}"


def render_table(results: dict[tuple[str, str], Outcome]) -> str:
    """The markdown table of every cell, columns padded."""
    head = ("phase of the faulty VMM", "fault", "the update", "the other two VMs", "the faulty VM")
    return fault_table.render(head, ((PHASE_TEXT[p], a, results[p, a].update,
                                      results[p, a].others, results[p, a].faulty)
                                     for p in PHASES for a in ACTIONS))


class TestFaultMatrix(harness.WorldTestCase):

    def wait_gone(self, vm_id: str, timeout: float | None = None) -> None:
        """Until the daemon no longer lists vm_id. It emits nothing when a
        registered VMM leaves, so this asks (bounded, every 20 ms)."""
        end = harness.deadline(timeout)
        while vm_id in self.world.vmm_list():
            if harness.remaining(end) <= 0:
                raise harness.HarnessError(f"the daemon still lists {vm_id}: "
                                           f"{self.world.vmm_list()}")
            time.sleep(0.02)

    def wait_disconnected(self, vm_id: str, timeout: float | None = None) -> dict:
        end = harness.deadline(timeout)
        while True:
            e = self.world.vmm_list()[vm_id]
            if e["connected"] is False:
                return e
            if harness.remaining(end) <= 0:
                raise harness.HarnessError(f"the daemon still has {vm_id} connected: {e}")
            time.sleep(0.02)

    def check_ram(self, v: harness.Vmm) -> dict:
        """SIGUSR1: every byte of its RAM as the model wants it. (Errors it
        printed before are judged by the caller.)"""
        n = len(v.find("verified"))
        done = len(v.find("writing", lambda e: e["after"] == "verify"))
        v.signal(signal.SIGUSR1)
        ev = v.wait_event("verified", count=n + 1, fail_on_error=False)
        self.assertEqual(ev["bad_words"], 0, ev)
        self.assertEqual(ev["verified_bytes"], MEM_MIB << 20, ev)
        if not ev["frozen"]:
            # a running VM's writer goes on after the check
            v.wait_event("writing", count=done + 1, pred=lambda e: e["after"] == "verify",
                         fail_on_error=False)
        return ev

    def check_restored(self, v: harness.Vmm, update_id: str) -> None:
        self.assertRestoredIntact(v, update_id, MEM_MIB << 20)
        self.assertVerifiedIntact(v, MEM_MIB << 20)

    def check_no_leak(self, base: tuple[int, int]) -> None:
        """The daemon, idle with the two good VMMs, as before the cell."""
        w = self.world
        self.assertEqual(sorted(w.vmm_list()), sorted(GOOD), w.vmm_list())
        self.assertIdle()
        fds, rss = daemon_usage(w)
        print(f"daemon fds {base[0]} -> {fds}, VmRSS {base[1]} -> {rss} KiB "
              f"({rss - base[1]:+d})", file=sys.stderr)
        if fds != base[0]:
            pid = w.daemon.pid
            have = {f: os.readlink(f"/proc/{pid}/fd/{f}") for f in os.listdir(f"/proc/{pid}/fd")}
            self.fail(f"the daemon holds {fds - base[0]:+d} fds after the cell: {have}")
        slack = RSS_SLACK_ASAN_KIB if under_asan(w.daemon.pid) else RSS_SLACK_KIB
        self.assertLessEqual(rss - base[1], slack,
                             f"the daemon's VmRSS grew by {rss - base[1]} KiB")

    def run_cell(self, phase: str, action: str) -> None:
        w = self.world
        w.start_daemon(f"--prepare-timeout={GENEROUS_TIMEOUT_MS}",
                       f"--freeze-timeout={GENEROUS_TIMEOUT_MS}")
        hang = action == "hang"
        prep_args = ["--timeout", str(PREPARE_TIMEOUT_S)] \
            if hang and phase in ("registering", "preserving") else []
        com_args = ["--freeze-timeout", str(FREEZE_TIMEOUT_MS)] \
            if hang and phase in ("prepared", "freezing") else []
        # In the frozen cells the good VMMs hold their FROZEN back until told
        # (SIGUSR2): the faulty one's FROZEN then is not the last, and its
        # fault comes before the reboot, as the phase says.
        hold = ["--freeze-hold"] if phase == "frozen" else []
        good = [w.start_vmm(GOOD[0], mem_mib=MEM_MIB, extra=hold),
                w.start_vmm(GOOD[1], mem_mib=MEM_MIB, mode="self", extra=hold)]
        image = w.make_kernel_image()

        # The baseline is a daemon that has been through an update (prepare,
        # abort) with the two good VMMs: what it keeps from one is no leak.
        self.assertCtlOk(w.ctl("prepare", image))
        self.assertCtlOk(w.ctl("abort"))
        for v in good:
            self.assertThawedIntact(v)
        self.assertIdle("aborted")
        base = daemon_usage(w)
        boot = w.fake_state()["boot"]

        fault = f"{action}@{phase}"
        bad = w.start_vmm(BAD, mem_mib=MEM_MIB, fault=fault)
        if action == "crash":
            bad.allowed_exit.add(-signal.SIGKILL)
        if phase == "registering":
            bad.wait_event("fault")
            if action != "hang":
                # before anything else: gone from the daemon, or the prepare
                # would race its hangup
                self.wait_gone(BAD)

        # --- prepare, and commit if it gets that far
        prep = w.ctl("prepare", *prep_args, image)
        if prep.rc != harness.CTL_OK:
            self.assertCtlError(prep, "vmm-failed")
        if phase == "prepared":
            bad.wait_event("fault")
            if action != "hang":
                # its hangup aborts the update, during prepare or right after
                w.wait_state("idle")
        com = None
        carried = BAD in w.vmm_list()
        if w.status()["state"] == "prepared":
            if phase == "frozen":
                com = self.commit_holding(good, bad, action)
            else:
                com = w.ctl("commit", *com_args)

        if com is not None and com.rc == harness.CTL_OK:
            out = self.after_kexec(phase, action, prep.json["update_id"], boot, carried)
        else:
            if com is not None:
                self.assertCtlError(com, "vmm-failed")
            out = self.after_abort(phase, action, good, bad, boot)
        self.check_no_leak(base)
        RESULTS[phase, action] = out
        self.assertEqual(out, EXPECTED[phase, action], f"cell {fault}")

    def commit_holding(self, good, bad, action) -> harness.CtlResult:
        """Commit while the good VMMs hold FROZEN back; release them only
        if the daemon is still waiting after the faulty VMM's fault."""
        w = self.world
        res: list = []
        t = threading.Thread(target=lambda: res.append(w.ctl("commit")), daemon=True)
        t.start()
        bad.wait_event("frozen")
        bad.wait_event("fault")
        for v in good:
            v.wait_event("held", fail_on_error=False)
        # A VMM lost after FROZEN does not stop the update: the others'
        # FROZEN still completes the barrier.
        for v in good:
            v.signal(signal.SIGUSR2)
        t.join(harness.TIMEOUT * 3)
        self.assertFalse(t.is_alive(), "commit did not return")
        return res[0]

    def after_abort(self, phase, action, good, bad, boot) -> Outcome:
        """No kexec: everyone on the old kernel, nothing left in the kernel."""
        w = self.world
        rep = w.report()
        self.assertIn(BAD, rep["error"]["message"], rep)
        update = classify_abort(rep)
        for v in good:
            self.assertThawedIntact(v, count=2)  # the first was the baseline's abort
            ev = self.check_ram(v)
            self.assertFalse(ev["frozen"], f"{v.vm_id} does not run: {ev}")
            for e in v.find("error"):
                self.assertTrue(e["message"].startswith(RACED_ABORT) and
                                e["message"].endswith(os.strerror(errno.EBUSY)),
                                f"{v.vm_id}: not a request that crossed the abort: {e}")
        fk = self.assertNothingPending()
        self.assertEqual(fk["boot"], boot, "no kexec may have happened")
        self.assertTrue(w.daemon.running())

        bad.wait_event("fault")
        if action == "crash":
            self.assertEqual(bad.wait_exit(), -signal.SIGKILL)
            faulty = DEAD
        else:
            self.assertTrue(bad.running(), bad.names())
            self.assertEqual(bad.find("thawed"), [], "the faulty VMM read no THAW")
            ev = self.check_ram(bad)
            faulty = STAYS_FROZEN if ev["frozen"] else RUNS_ON
            # leave the daemon as it was: the operator ends the faulty VMM
            bad.kill()
        self.wait_gone(BAD)
        return Outcome(update, THAWED, faulty)

    def after_kexec(self, phase, action, update_id, boot, carried) -> Outcome:
        """The kexec happened: every VM that was in the update (carried: the
        faulty one too) is restored, the faulty one once it is started again."""
        w = self.world
        if phase == "registering":
            bad = w.vmms[BAD]
            if action == "crash":
                self.assertEqual(bad.wait_exit(), -signal.SIGKILL)
                faulty = DEAD
            else:
                # it runs on the old kernel, unknown to the daemon: the kexec ends it
                ev = self.check_ram(bad)
                self.assertFalse(ev["frozen"], ev)
                faulty = NOT_CARRIED
        # The new daemon is compared with the old one's baseline. That one
        # had armed timers (the deadlines), so sd-event holds a timerfd for
        # CLOCK_MONOTONIC from then on; a restore timeout (long) makes the
        # new one arm one too, so that their fds compare one to one.
        new = w.simulate_reboot(boot, restart_vmms=list(GOOD) + ([BAD] if carried else []),
                                daemon_args=w.daemon_args + ["--restore-timeout=3600"])
        for vm_id in GOOD:
            self.check_restored(new[vm_id], update_id)
        rep_vms = self.report_vmms(w.report())
        self.assertEqual(BAD in rep_vms, carried, rep_vms)

        if not carried:
            update = DONE_WITHOUT
        elif phase not in AFTER_KEXEC:
            self.check_restored(new[BAD], update_id)
            self.assertEqual(new[BAD].find("fault"), [], "its fault was before the kexec")
            update, faulty = DONE, RESTORED
        else:
            faulty = self.faulty_after_kexec(phase, action, new[BAD], update_id)
            update = DONE_WHEN_BACK

        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        rep = w.report()
        self.assertEqual(rep["outcome"], "success", rep)
        for vm_id, r in self.report_vmms(rep).items():
            self.assertEqual(r["outcome"], "resumed", rep)
        self.assertNothingPending()
        if carried:
            # the restarted faulty VM leaves, so the daemon has what it had
            w.vmms[BAD].stop()
            self.wait_gone(BAD)
        return Outcome(update, RESTORED, faulty)

    def faulty_after_kexec(self, phase, action, bad: harness.Vmm, update_id: str) -> str:
        """The restarted faulty VMM faults; its memory must stay held until
        it comes back, and then be all there."""
        w = self.world
        if action == "crash":
            bad.allowed_exit.add(-signal.SIGKILL)
        self.assertTrue(bad.wait_event("registered")["restore"])
        bad.wait_event("fault")
        if phase == "restored":
            self.assertEqual(bad.wait_event("restored")["verified_bytes"], MEM_MIB << 20)
        steps = []

        if action == "crash":
            self.assertEqual(bad.wait_exit(), -signal.SIGKILL)
        if action != "hang":
            e = self.wait_disconnected(BAD)
            self.assertEqual(e["state"], "restored", e)
        # the others are done; the update waits for it, its session in the kernel
        for vm_id in GOOD:
            w.vmms[vm_id].wait_event("resumed")
        st = w.status()
        self.assertEqual(st["state"], "finishing", st)
        self.assertEqual(st["update_id"], update_id, st)
        sessions = [s for s in w.fake_state()["sessions"] if s["name"].endswith("." + BAD)]
        self.assertEqual(len(sessions), 1, sessions)
        self.assertEqual(len(sessions[0]["files"]), 2, sessions)  # RAM and vmstate

        if action != "crash" and phase == "restored":
            # what it retrieved is its own: still all there
            ev = self.check_ram(bad)
            self.assertTrue(ev["frozen"], f"a VM restored but not resumed does not run: {ev}")
            steps.append(KEPT.rstrip("; "))
        if action == "hang":
            # connected: the operator cannot release it; only ending it helps
            r = w.ctl("release", BAD)
            self.assertCtlError(r, "bad-state")
            bad.kill()
            self.wait_disconnected(BAD)
            steps.append(HELD_HUNG)
        else:
            if action == "disconnect":
                self.assertTrue(bad.running())
                bad.stop()
            steps.append(HELD)

        again = w.start_vmm(BAD, mem_mib=MEM_MIB, wait=False)
        self.check_restored(again, update_id)
        return "; ".join(steps)


def _cell_test(phase: str, action: str):
    def test(self):
        self.run_cell(phase, action)
    test.__doc__ = f"--fault {action}@{phase}"
    return test


for _p in PHASES:
    for _a in ACTIONS:
        setattr(TestFaultMatrix, f"test_{PHASES.index(_p)}_{_p}_{_a}", _cell_test(_p, _a))


def main() -> int:
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    if not prog.result.wasSuccessful():
        return 1
    if len(RESULTS) != len(EXPECTED):
        print(f"fault matrix: {len(RESULTS)} of {len(EXPECTED)} cells ran; no table written",
              file=sys.stderr)
        return 0
    table = render_table(RESULTS)
    fault_table.write(OUT, table, "fault matrix")
    if not fault_table.check_readme(fault_table.VMM, table, "fault matrix"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
