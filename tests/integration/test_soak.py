# SPDX-License-Identifier: LGPL-2.1-or-later
"""Soak: a hundred update cycles in a row, and what they leave behind.

Against the fake kernel, CYCLES cycles (default 100, $LIVEUPDATE_SOAK_CYCLES)
one after the other: most are full updates (prepare, commit, the simulated
kexec, a new daemon, every VMM restarted, every VM restored and its memory
checked byte for byte by the refvmm, every session finished); in every ten,
cycles 4, 5 and 6 are prepare/abort cycles instead, run back to back on one
daemon (every VMM THAWed, its memory checked, its writer running again).
Between cycles VMMs come and go: two VMs live through the whole soak, a
third lives one cycle: after every cycle it exits (SIGTERM, it leaves while
idle) and a VM with a new id registers. Throughout, control
clients hammer the daemon: two keep one connection each and send status
after status, one connects, asks for status and hangs up in a loop, and two
hold the event stream (subscribe), reconnecting whenever a simulated kexec
kills the daemon under them.

After each cycle everything is brought to the same rest point (hammers
parked on their connections, subscribers subscribed to the current daemon,
every VMM running and registered, two status round trips on a probe
connection so that the daemon has handled every earlier hang-up) and the
daemon's figures are taken from /proc: its open fds, VmRSS and VmHWM.
The checks:

- the fd count is the same after the last cycle as after the first, and
  the same at every rest point of the same kind (after a commit cycle: a
  daemon that restored; after an abort cycle: one that also prepared and
  aborted, and so holds sd-event's timerfd too): a leak of one fd per
  cycle, per VMM or per client shows at once;
- VmRSS after the last cycle is at most RSS_TOLERANCE above the first
  (see below), and the state directory holds the same files;
- every VM's memory was verified at every restore and every THAW, every
  status request was answered with a well-formed result, and every
  subscriber saw every cycle's prepare (and abort) on its stream.

Memory and sanitizers. Every commit restarts the daemon (that is what the
kexec does), so the first and last figures are those of two daemons at the
same point of their lives, one that did the first update and one that did
the hundredth: they compare what one update leaves for the next (state
directory, handover file, reports, the kernel's sessions, the fd store).
What one daemon accumulates while it lives (three prepare/abort cycles in a
row, the VMM churn, the status requests and subscriptions) is compared
within each run of abort cycles: one daemon, its first rest point against
its last, fds equal and VmRSS within the tolerance. A heap leak too small
for those (a few bytes per request) is LeakSanitizer's to find: the last
daemon exits by SIGTERM and the harness fails the test on its report (the
daemons the simulated kexec SIGKILLs are not leak-checked).

Under ASan the allocator's quarantine keeps freed memory (up to 256 MiB)
resident on purpose, so RSS would grow with the number of frees rather than
with what is live; the soak's daemons therefore run with
quarantine_size_mb=0 and thread_local_quarantine_size_kb=0 (ASan still
checks every access, LeakSanitizer still runs). RSS is then the live heap,
ASan's shadow of it and the allocator's size-class caches (about 13 MiB);
in a release build the plain process (about 5.5 MiB). RSS_TOLERANCE, 1 MiB
plus 5 % of the first figure, absorbs the page-granular caches and a
different heap layout between two processes (the rest points of one soak
spread over about 0.6 MiB under ASan, 30 KiB in a release build).
The figures are printed as one JSON line.

The soak is its own meson suite ('soak'), not part of 'integration': on 2
busy cores a cycle takes about 0.7 s in a release build, 1.7 s under ASan,
so one to three minutes in all.
"""

import json
import os
import threading
import time

import harness

CYCLES = int(os.environ.get("LIVEUPDATE_SOAK_CYCLES", "100"))
#: Cycles (1-based) whose number ends in one of these are prepare/abort cycles.
ABORT_DIGITS = (4, 5, 6)
#: How much VmRSS may grow from the first rest point to the last.
RSS_TOLERANCE_FIXED_KIB = 1024
RSS_TOLERANCE_RATIO = 0.05
#: Daemon states a status result may name (man/liveupdated-api.md).
STATES = {"idle", "preparing", "prepared", "freezing", "frozen", "rebooting", "restoring",
          "finishing"}
#: The soak's daemon: ASan without its quarantine, so that RSS means live memory.
ASAN_SOAK = "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"


class Client(harness.ApiClient):
    """harness.ApiClient that closes its socket when the connect fails (the
    daemon between two lives), rather than leaving it to the collector."""

    def __init__(self, path: str, timeout: float | None = None):
        try:
            super().__init__(path, timeout)
        except OSError:
            self.sock.close()
            raise


def is_abort_cycle(i: int) -> bool:
    return i % 10 in ABORT_DIGITS


def proc_figures(pid: int) -> dict:
    """The daemon's open fds, VmRSS and VmHWM (KiB), from /proc."""
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    out = {"fds": len(links), "fd_links": links}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Gate:
    """Parks the load threads at rest points and lets them go again."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.paused = False
        self.stop = False
        self.generation = 0  # bumped before every daemon start


class StatusHammer(threading.Thread):
    """status after status on one connection (persistent) or on a new
    connection each time (churn); reconnects when the daemon goes away."""

    def __init__(self, name: str, path: str, gate: Gate, persistent: bool):
        super().__init__(name=name, daemon=True)
        self.path = path
        self.gate = gate
        self.persistent = persistent
        self.served = 0
        self.reconnects = 0
        self.problems: list[str] = []
        self.parked_gen = -1  # the generation it parked in, connected (persistent) or not
        self.conn: Client | None = None
        self.conn_gen = -1

    def connect(self) -> Client | None:
        with self.gate.cond:
            gen = self.gate.generation
        try:
            c = Client(self.path, timeout=harness.TIMEOUT)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        self.conn_gen = gen
        return c

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def one(self) -> bool:
        """One status request; False if the connection went away."""
        if self.conn is None:
            self.conn = self.connect()
            if self.conn is None:
                return False
            self.reconnects += 1
        try:
            rid = self.conn.request("status")
            reply = self.conn.read_reply()
        except (OSError, harness.HarnessError):
            # the simulated kexec SIGKILLs the daemon under us
            self.drop()
            return False
        if reply.get("id") != rid or reply.get("ok") is not True or \
                reply.get("result", {}).get("state") not in STATES:
            self.problems.append(f"bad status reply: {reply}")
        else:
            self.served += 1
        if not self.persistent:
            self.drop()
        return True

    def run(self) -> None:
        while True:
            with self.gate.cond:
                if self.gate.stop:
                    break
                gen = self.gate.generation
                if self.gate.paused and (not self.persistent or
                                         (self.conn is not None and self.conn_gen == gen)):
                    # park (the persistent ones on their connection to this daemon)
                    self.parked_gen = gen
                    self.gate.cond.notify_all()
                    while self.gate.paused and not self.gate.stop and \
                            self.gate.generation == gen:
                        self.gate.cond.wait()
                    self.parked_gen = -1
                    continue
                if self.gate.paused and self.conn is not None:
                    self.drop()  # connected to a daemon of another generation
            if not self.one():
                time.sleep(0.005)  # the daemon is between two lives
        self.drop()


class Subscriber(threading.Thread):
    """Holds the event stream; resubscribes to every new daemon."""

    def __init__(self, name: str, path: str, gate: Gate):
        super().__init__(name=name, daemon=True)
        self.path = path
        self.gate = gate
        self.events = 0
        self.subscribed_gen = -1
        self.prepared: set[str] = set()  # update ids seen in state 'prepared'
        self.aborted: set[str] = set()   # update ids seen with outcome 'aborted'
        self.problems: list[str] = []

    def run(self) -> None:
        while True:
            with self.gate.cond:
                if self.gate.stop:
                    return
                gen = self.gate.generation
            try:
                c = Client(self.path, timeout=0.5)
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.005)
                continue
            try:
                rid = c.request("subscribe")
                reply = c.read_reply(timeout=harness.TIMEOUT)
                if reply.get("id") != rid or reply.get("ok") is not True:
                    self.problems.append(f"subscribe refused: {reply}")
                    c.close()
                    return
                with self.gate.cond:
                    self.subscribed_gen = gen
                    self.gate.cond.notify_all()
                while True:
                    with self.gate.cond:
                        if self.gate.stop:
                            c.close()
                            return
                    try:
                        msg = c.read(timeout=0.5)
                    except harness.HarnessError as e:
                        if "within the deadline" in str(e):
                            continue  # a quiet stream: look at stop, read on
                        self.problems.append(str(e))
                        break
                    if msg is None:
                        break  # the daemon went away (the simulated kexec)
                    self.account(msg)
            except (OSError, harness.HarnessError):
                pass
            c.close()

    def account(self, msg: dict) -> None:
        if "event" not in msg:
            self.problems.append(f"a reply on a subscription with nothing pending: {msg}")
            return
        self.events += 1
        if msg["event"] == "state" and msg.get("state") == "prepared":
            self.prepared.add(msg.get("update_id"))
        elif msg["event"] == "outcome" and msg.get("outcome") == "aborted":
            self.aborted.add(msg.get("update_id"))


class TestSoak(harness.WorldTestCase):

    def soak_env(self) -> dict:
        env = self.world.c_env()
        asan = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = f"{asan}:{ASAN_SOAK}" if asan else ASAN_SOAK
        return env

    def start_soak_daemon(self, args) -> None:
        with self.gate.cond:
            self.gate.generation += 1
            self.gate.cond.notify_all()
        self.world.start_daemon(*args, env=self.soak_env())
        self.daemon_instances += 1

    # -- processes that are done are checked now and then forgotten, so that
    # -- a hundred cycles do not keep a thousand log files open

    def retire(self, p: harness.Process) -> None:
        rc = p.poll()
        self.assertIsNotNone(rc, f"{p.name} still runs")
        self.assertIn(rc, p.allowed_exit, f"{p.name} exited {rc}")
        rep = harness.sanitizer_report(p.stderr_text())
        self.assertIsNone(rep, f"{p.name}: {rep}")
        if isinstance(p, harness.Vmm):
            self.assertEqual(p.bad_lines, [], p.name)
            if p.popen.stdout:
                p.popen.stdout.close()
        p.close_files()
        self.world.processes.remove(p)

    def retire_dead(self) -> None:
        for p in list(self.world.processes):
            if p.poll() is not None and p is not self.world.fake_kernel:
                if isinstance(p, harness.Vmm):
                    p._thread.join(harness.TIMEOUT)
                self.retire(p)

    # -- the load ----------------------------------------------------------------

    def start_load(self) -> None:
        path = self.world.control_socket
        self.hammers = [StatusHammer("status-1", path, self.gate, True),
                        StatusHammer("status-2", path, self.gate, True),
                        StatusHammer("status-churn", path, self.gate, False)]
        self.subscribers = [Subscriber("subscriber-1", path, self.gate),
                            Subscriber("subscriber-2", path, self.gate)]
        for t in self.hammers + self.subscribers:
            t.start()
        self.addCleanup(self.stop_load)

    def stop_load(self) -> None:
        with self.gate.cond:
            self.gate.stop = True
            self.gate.cond.notify_all()
        for t in self.hammers + self.subscribers:
            t.join(harness.TIMEOUT)

    def wait_for_load(self, parked: bool) -> None:
        """Every subscriber on the current daemon; with parked, every hammer
        parked (the persistent ones connected to the current daemon)."""
        end = harness.deadline(None)
        with self.gate.cond:
            self.gate.paused = parked
            self.gate.cond.notify_all()
            while True:
                gen = self.gate.generation
                ok = all(s.subscribed_gen == gen for s in self.subscribers)
                if parked:
                    ok = ok and all(h.parked_gen == gen for h in self.hammers)
                if ok:
                    return
                left = harness.remaining(end)
                if left <= 0:
                    raise harness.HarnessError(
                        f"load threads not ready for generation {gen}: subscribers "
                        f"{[s.subscribed_gen for s in self.subscribers]}, hammers "
                        f"{[h.parked_gen for h in self.hammers]}")
                self.gate.cond.wait(left)

    def rest_point(self) -> dict:
        """Park the load, let the daemon see every hang-up, take its figures."""
        w = self.world
        self.wait_for_load(parked=True)
        with w.api() as probe:
            # two round trips: a hang-up that happened before the first
            # request is handled before the second (sd-event's pending order)
            harness.result(probe.call("status"))
            harness.result(probe.call("status"))
            fig = proc_figures(w.daemon.pid)
        fig["state_files"] = sorted(os.listdir(w.state_dir))
        with self.gate.cond:
            self.gate.paused = False
            self.gate.cond.notify_all()
        return fig

    # -- the VMMs ----------------------------------------------------------------

    def start_transient(self) -> None:
        self.next_vm += 1
        vm_id = f"vm-t{self.next_vm:03d}"
        self.world.start_vmm(vm_id, mem_mib=1, mode="self" if self.next_vm % 2 else None,
                             seed=self.next_vm)
        self.mem[vm_id] = 1 << 20
        self.transients.append(vm_id)

    def churn(self) -> None:
        """The oldest transient VM exits, one with a new id registers."""
        w = self.world
        gone = self.transients.pop(0)
        v = w.vmms.pop(gone)
        self.assertEqual(v.stop(), 0, v.names())
        self.assertEqual(v.find("exit")[-1]["signal"], "TERM", v.names())
        # it leaves while idle: gone from the list at once
        end = harness.deadline(None)
        while gone in w.vmm_list():
            self.assertGreater(harness.remaining(end), 0, f"{gone} still listed")
            time.sleep(0.01)
        self.start_transient()

    # -- the cycles ----------------------------------------------------------------

    def commit_cycle(self, i: int) -> None:
        w = self.world
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", self.image))
        uid = prep["update_id"]
        self.assertEqual(prep["vmms"], len(w.vmms), prep)
        for v in w.vmms.values():
            v.wait_event("prepared", pred=lambda e: e["update_id"] == uid)
        self.update_ids.append(uid)
        com = self.assertCtlOk(w.ctl("commit"))
        self.assertEqual(com["update_id"], uid, com)

        new = w.simulate_reboot(boot, start_daemon=self.start_soak_daemon)
        for vm_id, v in new.items():
            reg = v.wait_event("registered")
            self.assertTrue(reg["restore"], f"cycle {i}: {vm_id} {reg}")
            res = v.wait_event("restored")
            self.assertEqual(res["update_id"], uid, res)
            self.assertEqual(res["verified_bytes"], self.mem[vm_id], f"cycle {i}: {res}")
            self.assertTrue(res["checksum_ok"], f"cycle {i}: {vm_id} {res}")
            self.bytes_verified += res["verified_bytes"]
            v.wait_event("resumed")
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", f"cycle {i}: {st}")
        self.assertEqual(st["vmms"], {"total": len(new), "registered": len(new)}, st)

    def abort_cycle(self, i: int) -> None:
        w = self.world
        thawed = {vm_id: len(v.find("thawed")) for vm_id, v in w.vmms.items()}
        prep = self.assertCtlOk(w.ctl("prepare", self.image))
        uid = prep["update_id"]
        for v in w.vmms.values():
            v.wait_event("prepared", pred=lambda e: e["update_id"] == uid)
        self.update_ids.append(uid)
        self.aborted_ids.append(uid)
        self.assertCtlOk(w.ctl("abort"))
        for vm_id, v in w.vmms.items():
            ev = self.assertThawedIntact(v, count=thawed[vm_id] + 1)
            self.assertEqual(ev["verified_bytes"], self.mem[vm_id], f"cycle {i}: {ev}")
            self.bytes_verified += ev["verified_bytes"]
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "aborted", f"cycle {i}: {st}")

    def test_soak(self):
        w = self.world
        self.gate = Gate()
        self.daemon_instances = 0
        self.next_vm = 0
        self.mem: dict[str, int] = {}
        self.transients: list[str] = []
        self.update_ids: list[str] = []
        self.aborted_ids: list[str] = []
        self.bytes_verified = 0
        with open(w.bin["daemon"], "rb") as f:
            sanitized = b"__asan_init" in f.read()

        self.start_soak_daemon([])
        self.start_load()
        # two VMs for the whole soak (one sends its fds, with two RAM memfds;
        # one preserves them itself), one that comes and goes
        w.start_vmm("vm-keep-send", mem_mib=1, ram_fds=2, seed=101)
        w.start_vmm("vm-keep-self", mem_mib=2, mode="self", seed=102)
        self.mem.update({"vm-keep-send": 2 << 20, "vm-keep-self": 2 << 20})
        self.start_transient()
        self.image = w.make_kernel_image()

        samples: list[tuple[int, dict]] = []
        start = time.monotonic()
        for i in range(1, CYCLES + 1):
            # every subscriber listens to this daemon before the cycle starts
            self.wait_for_load(parked=False)
            if is_abort_cycle(i):
                self.abort_cycle(i)
            else:
                self.commit_cycle(i)
            self.churn()
            self.retire_dead()
            samples.append((i, self.rest_point()))
        wall = time.monotonic() - start
        self.stop_load()

        first, last = samples[0][1], samples[-1][1]
        served = sum(h.served for h in self.hammers)
        events = sum(s.events for s in self.subscribers)
        tolerance = RSS_TOLERANCE_FIXED_KIB + int(first["VmRSS"] * RSS_TOLERANCE_RATIO)
        figures = {
            "test": "soak",
            "cycles": CYCLES,
            "commit_cycles": CYCLES - len(self.aborted_ids),
            "abort_cycles": len(self.aborted_ids),
            "wall_s": round(wall, 2),
            "per_cycle_ms": round(wall * 1000 / CYCLES, 1),
            "daemon_instances": self.daemon_instances,
            "vm_ids": 2 + self.next_vm,
            "bytes_verified": self.bytes_verified,
            "fds_first": first["fds"],
            "fds_last": last["fds"],
            "fds_min": min(s["fds"] for _, s in samples),
            "fds_max": max(s["fds"] for _, s in samples),
            "vmrss_kib_first": first["VmRSS"],
            "vmrss_kib_last": last["VmRSS"],
            "vmrss_kib_max": max(s["VmRSS"] for _, s in samples),
            "vmhwm_kib_first": first["VmHWM"],
            "vmhwm_kib_last": last["VmHWM"],
            "rss_tolerance_kib": tolerance,
            "status_requests": served,
            "events_received": events,
            "asan": sanitized,
        }
        print(json.dumps(figures), flush=True)

        # the load itself went as it should
        for t in self.hammers + self.subscribers:
            self.assertEqual(t.problems[:3], [], t.name)
        self.assertGreater(served, CYCLES, "the hammers hardly got a status through")
        for s in self.subscribers:
            missed = [u for u in self.update_ids if u not in s.prepared]
            self.assertEqual(missed, [], f"{s.name} saw no 'prepared' for these updates")
            missed = [u for u in self.aborted_ids if u not in s.aborted]
            self.assertEqual(missed, [], f"{s.name} saw no 'aborted' outcome for these")

        # what the cycles left behind
        # sd-event creates its CLOCK_MONOTONIC timerfd the first time a
        # deadline is armed (a prepare's) and keeps it: a daemon that has
        # prepared and aborted holds one fd more than one that has only
        # restored. So rest points are compared with their own kind.
        for kind, ref in (("commit", first), ("abort", None)):
            kind_samples = [(i, s) for i, s in samples
                            if (is_abort_cycle(i)) == (kind == "abort")]
            if not kind_samples:
                continue
            ref = ref or kind_samples[0][1]
            drift = [(i, s["fds"]) for i, s in kind_samples if s["fds"] != ref["fds"]]
            self.assertEqual(drift, [], f"after {kind} cycles the daemon's fd count moved from "
                                        f"{ref['fds']} (cycle, fds): {drift[:20]}; at first "
                                        f"{ref['fd_links']}, then "
                                        f"{samples[drift[0][0] - 1][1]['fd_links'] if drift else None}")
        # within one daemon's life: each run of abort cycles
        runs: list[list[tuple[int, dict]]] = []
        for i, s in samples:
            if is_abort_cycle(i):
                if runs and runs[-1][-1][0] == i - 1:
                    runs[-1].append((i, s))
                else:
                    runs.append([(i, s)])
        for run in runs:
            (i0, s0), (i1, s1) = run[0], run[-1]
            self.assertLessEqual(s1["VmRSS"], s0["VmRSS"] + tolerance,
                                 f"one daemon's VmRSS grew from cycle {i0} to {i1}: "
                                 f"{s0['VmRSS']} -> {s1['VmRSS']} KiB")
        same_kind = [s for i, s in samples if is_abort_cycle(i) == is_abort_cycle(CYCLES)]
        self.assertEqual(last["fds"], same_kind[0]["fds"], figures)
        self.assertLessEqual(last["VmRSS"], first["VmRSS"] + tolerance,
                             f"VmRSS grew beyond the tolerance: {figures}")
        self.assertEqual(last["state_files"], first["state_files"], "the state directory grew")
        self.assertNothingPending()


if __name__ == "__main__":
    harness.main()
