# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon under a service manager, without systemd.

fake_systemd.FakeSystemd plays PID 1 for units/liveupdated.service and its
sockets: it binds the activated sockets, owns NOTIFY_SOCKET and the fd
store, and starts the real daemon the way systemd would (LISTEN_FDS,
LISTEN_FDNAMES, LISTEN_PID, WATCHDOG_USEC). The scenarios:

1. socket activation: the daemon serves the sockets it was handed, says
   READY=1 once a status request on them works, and says its state in STATUS=;
2. the watchdog: WATCHDOG_USEC makes it send WATCHDOG=1, repeatedly;
3. the fd store keeps a prepared update across a daemon crash: every session
   is stored, a SIGKILL cancels nothing; without update.json the next
   instance holds the sessions (status held_sessions, prepare refused),
   abort releases them with FDSTOREREMOVE, and only then does the kernel
   drop them (with it, test_daemon_restart.py);
4. a graceful stop while prepared says STOPPING=1 and removes nothing from
   the fd store (the next instance needs the sessions);
5. a whole update across a (simulated) kexec, the new daemon under a new
   service manager: every session stored during the restore is removed
   from the store once the update finished.
"""

import os
import signal

import fake_systemd
import harness


class SystemdTestCase(fake_systemd.ServiceManagerTestCase):

    def prepare(self, vm_ids: list[str]) -> dict:
        """Start VMMs (one preserving through the daemon, one into its session
        itself, alternately) and prepare an update for them."""
        w = self.world
        for i, vm_id in enumerate(vm_ids):
            w.start_vmm(vm_id, mem_mib=4, mode="self" if i % 2 else None)
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertEqual(prep["state"], "prepared", prep)
        for vm_id in vm_ids:
            w.vmms[vm_id].wait_event("prepared")
        return prep

    def assertStoredSessions(self, fs: fake_systemd.FakeSystemd, since: int, tag: str,
                             vm_ids: list[str]) -> list[str]:
        """FDSTORE=1 with an fd arrived (after since) for the daemon's own
        session and one lu.<tag>.<vm> per VM, and the store has exactly those."""
        expected = sorted(["liveupdated"] + [f"lu.{tag}.{vm_id}" for vm_id in vm_ids])
        stores = fs.find_key("FDSTORE", since=since)
        got = sorted(n.get("FDNAME") for n in stores)
        self.assertEqual(got, expected, f"FDSTORE=1 messages: {fs.summary(since)}")
        for n in stores:
            self.assertEqual(n.n_fds, 1, f"FDSTORE=1 must carry the session fd: {n}")
        self.assertEqual(sorted(fs.stored_names()), expected, fs.summary())
        return expected

    def assertKernelSessions(self, names: list[str], outgoing: bool = True) -> dict:
        fk = self.world.fake_state()
        self.assertEqual(sorted(s["name"] for s in fk["sessions"]), sorted(names), fk)
        for s in fk["sessions"]:
            self.assertEqual(s["incoming"], not outgoing, s)
        return fk

    def reboot_under_new_manager(self, fs: fake_systemd.FakeSystemd, boot: int,
                                 **kw) -> tuple[dict, fake_systemd.FakeSystemd]:
        """The simulated kexec, with the new daemon under a new PID 1: an
        empty fd store and fresh sockets. Returns the new VMMs and manager."""
        boots: list[fake_systemd.FakeSystemd] = []

        def boot_service(args: list[str]) -> None:
            fs.close()
            nfs = self.start_manager("systemd-boot1")
            boots.append(nfs)
            self.start_service(nfs, *args)

        new = self.world.simulate_reboot(boot, start_daemon=boot_service, **kw)
        return new, boots[0]

    def allow_hangup(self, vm_ids: list[str]) -> None:
        """The daemon goes away under these VMMs: the refvmm exits 4 then."""
        for vm_id in vm_ids:
            v = self.world.vmms[vm_id]
            v.allowed_exit.update({harness.VMM_EXIT_HANGUP})

    # -----------------------------------------------------------------------

    def test_1_socket_activation(self):
        w = self.world
        fs = self.start_manager()
        since = fs.mark()
        d = fs.start()
        ready = fs.wait_ready()

        # straight after READY=1, without any retry: the handed control socket answers
        with harness.ApiClient(w.control_socket) as c:
            st = harness.result(c.call("status"))
        self.assertEqual(st["state"], "idle", st)
        self.assertNotIn("held_sessions", st)
        # it served what it was handed rather than binding its own
        for name in ("vmm.sock", "control.sock"):
            self.assertFalse(os.path.exists(os.path.join(w.runtime_dir, name)),
                             f"the daemon bound its own {name} although it was handed one")
        self.assertTrue(w.control_socket.startswith(w.path("activated")), w.control_socket)

        # STATUS= says the state, after READY=1
        status = fs.wait_for(lambda n: "idle" in n.get("STATUS", ""), since=since,
                             what="STATUS= with the state idle")
        self.assertGreater(status.index, ready.index, fs.summary(since))
        self.assertEqual(len(fs.find_key("READY", since=since)), 1, fs.summary(since))

        # the handed VMM socket registers VMMs, and STATUS= follows
        mark = fs.mark()
        w.start_vmm("vm-1", mem_mib=4)
        fs.wait_for(lambda n: "1 VMMs" in n.get("STATUS", ""), since=mark,
                    what="STATUS= counting the VMM")
        self.assertEqual(w.vmm_list()["vm-1"]["state"], "registered")

        mark = fs.mark()
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        fs.wait_for(lambda n: n.get("STATUS", "").startswith("prepared")
                    and prep["update_id"] in n.get("STATUS", ""), since=mark,
                    what="STATUS= prepared <update id>")
        mark = fs.mark()
        self.assertCtlOk(w.ctl("abort"))
        fs.wait_for(lambda n: n.get("STATUS", "").startswith("idle"), since=mark,
                    what="STATUS= idle after the abort")
        # nothing asked for a watchdog, nothing was stopped
        self.assertEqual(fs.find_key("WATCHDOG", since=since), [], fs.summary(since))
        self.assertEqual(fs.find_key("STOPPING", since=since), [], fs.summary(since))
        self.assertTrue(d.running())

    def test_2_watchdog(self):
        fs = self.start_manager()
        since = fs.mark()
        fs.start(watchdog_usec=2_000_000)
        ready = fs.wait_ready()
        # sd-event pings every half period or so: two pings within 6 s
        first = fs.wait_key("WATCHDOG", since=since, timeout=6)
        second = fs.wait_key("WATCHDOG", since=since, count=2, timeout=6)
        self.assertLess(first.time - ready.time, 4.0, fs.summary(since))
        self.assertGreater(second.time, first.time)
        self.assertLess(second.time - first.time, 2.0,
                        f"pings further apart than WATCHDOG_USEC: {fs.summary(since)}")
        self.assertEqual(self.world.status()["state"], "idle")

    def test_3_fd_store_keeps_update_across_crash(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager()
        since = fs.mark()
        self.start_service(fs)
        prep = self.prepare(vm_ids)
        tag = prep["update_id"].rsplit("-", 1)[1]
        names = self.assertStoredSessions(fs, since, tag, vm_ids)
        before = self.assertKernelSessions(names)

        # the crash: nothing runs any cleanup
        w.daemon.kill()
        # without update.json (a daemon older than it, or a lost file) the next
        # instance cannot tell what the sessions are: it only holds them
        # (test_daemon_restart.py has the update picked up)
        os.unlink(os.path.join(w.state_dir, "update.json"))
        fs.sync()
        self.assertEqual(fs.find_key("FDSTOREREMOVE", since=since), [], fs.summary(since))
        # only the fake systemd holds the sessions now, and the kernel kept them all
        after = self.assertKernelSessions(names)
        self.assertEqual({s["name"]: s["files"] for s in after["sessions"]},
                         {s["name"]: s["files"] for s in before["sessions"]},
                         "the crash changed what the kernel preserves")

        # the next instance gets them back from the fd store and holds them
        since = fs.mark()
        self.start_service(fs)
        st = w.status()
        self.assertEqual(st["state"], "idle", st)
        held = st.get("held_sessions", [])
        self.assertEqual(sorted(h["name"] for h in held), names, st)
        # before the kexec: outgoing sessions, which an abort may cancel
        self.assertEqual([h for h in held if h["incoming"]], [], st)
        self.assertEqual(fs.find_key("FDSTORE", since=since), [], "nothing new to store")
        self.assertKernelSessions(names)
        # the VMMs' libraries reconnect; not told the update goes on, they thaw
        for vm_id in vm_ids:
            self.assertThawedIntact(w.vmms[vm_id])
        err = self.assertCtlError(w.ctl("prepare", w.make_kernel_image()), "bad-state")
        self.assertIn("held", err["message"], err)
        self.assertKernelSessions(names)

        # abort releases them: out of the daemon, out of the store, out of the kernel
        res = self.assertCtlOk(w.ctl("abort"))
        self.assertEqual(res.get("released_sessions"), len(names), res)
        self.assertEqual(res["state"], "idle", res)
        for i in range(1, len(names) + 1):
            fs.wait_key("FDSTOREREMOVE", since=since, count=i)
        removed = sorted(n.get("FDNAME") for n in fs.find_key("FDSTOREREMOVE", since=since))
        self.assertEqual(removed, names, fs.summary(since))
        self.assertEqual(fs.stored_names(), [], fs.summary())
        st = w.status()
        self.assertNotIn("held_sessions", st)
        fk = w.fake_state()
        self.assertEqual(fk["sessions"], [], f"sessions left in the kernel: {fk}")
        self.assertFalse(fk["device_open"], fk)
        self.expect(fk["kexec"] is None,
                    f"the aborted update's kernel image is still loaded after the abort: {fk}")
        # and a new update can go
        w.start_vmm("vm-c", mem_mib=4)
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("abort"))

    def test_4_graceful_stop_keeps_the_store(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager()
        since = fs.mark()
        d = self.start_service(fs)
        prep = self.prepare(vm_ids)
        tag = prep["update_id"].rsplit("-", 1)[1]
        names = self.assertStoredSessions(fs, since, tag, vm_ids)

        self.allow_hangup(vm_ids)
        mark = fs.mark()
        d.signal(signal.SIGTERM)
        rc = d.wait()
        self.assertEqual(rc, 0, d.stderr_text()[-3000:])
        # the VMMs wait for the daemon to come back
        for vm_id in vm_ids:
            self.assertTrue(w.vmms[vm_id].running(), w.vmms[vm_id].names())
        fs.wait_key("STOPPING", since=mark)
        fs.sync()
        self.assertEqual(fs.find_key("FDSTOREREMOVE", since=since), [],
                         f"a graceful stop emptied the fd store: {fs.summary(since)}")
        self.assertEqual(sorted(fs.stored_names()), names, fs.summary())
        self.assertKernelSessions(names)
        self.assertNotIn("without an fd store", d.stderr_text())

    def test_5_cycle_store_emptied_after_restore(self):
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager("systemd-boot0")
        since = fs.mark()
        self.start_service(fs)
        boot = w.fake_state()["boot"]
        prep = self.prepare(vm_ids)
        tag = prep["update_id"].rsplit("-", 1)[1]
        self.assertStoredSessions(fs, since, tag, vm_ids)
        self.assertCtlOk(w.ctl("commit"))

        new, nfs = self.reboot_under_new_manager(fs, boot)
        for vm_id in vm_ids:
            new[vm_id].wait_event("resumed")
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)

        stores = nfs.find_key("FDSTORE")
        ready = nfs.find_key("READY")[0]
        expected = sorted(["liveupdated"] + [f"lu.{tag}.{vm_id}" for vm_id in vm_ids])
        self.assertEqual(sorted(n.get("FDNAME") for n in stores), expected,
                         f"the restore keeps every session in the fd store: {nfs.summary()}")
        for n in stores:
            self.assertEqual(n.n_fds, 1, n)
            self.assertLess(n.index, ready.index, f"stored after READY=1: {nfs.summary()}")
        # every FDSTORE=1 matched by a later FDSTOREREMOVE of that name
        for n in stores:
            nfs.wait_for(lambda r, n=n: r.is_("FDSTOREREMOVE") and r.get("FDNAME") == n.get("FDNAME"),
                         since=n.index + 1, what=f"FDSTOREREMOVE of {n.get('FDNAME')}")
        nfs.sync()
        self.assertEqual(nfs.stored_names(), [], nfs.summary())
        self.assertNothingPending()

    def test_6_crash_while_restoring_is_picked_up(self):
        """After the kexec the sessions hold guest memory nobody retrieved
        yet: a daemon crash must neither finish them (closing a retrieved
        session does) nor let an abort do it; the next instance picks the
        restore up where it was."""
        w = self.world
        vm_ids = ["vm-a", "vm-b"]
        fs = self.start_manager("systemd-boot0")
        self.start_service(fs)
        boot = w.fake_state()["boot"]
        prep = self.prepare(vm_ids)
        tag = prep["update_id"].rsplit("-", 1)[1]
        self.assertCtlOk(w.ctl("commit"))

        # only vm-a comes back before the crash
        new, nfs = self.reboot_under_new_manager(fs, boot, restart_vmms=["vm-a"])
        new["vm-a"].wait_event("resumed")
        nfs.wait_for(lambda r: r.is_("FDSTOREREMOVE") and r.get("FDNAME") == f"lu.{tag}.vm-a",
                     what="vm-a's session finished and dropped from the store")
        self.assertEqual(w.status()["state"], "restoring", "vm-b is not back yet")

        # the crash
        self.allow_hangup(["vm-a"])
        w.daemon.kill()
        nfs.sync()
        self.assertEqual(sorted(nfs.stored_names()), sorted(["liveupdated", f"lu.{tag}.vm-b"]),
                         nfs.summary())
        vm_b = [s for s in w.fake_state()["sessions"] if s["name"] == f"lu.{tag}.vm-b"]
        self.assertEqual(len(vm_b), 1, "vm-b's memory is still preserved")
        self.assertTrue(all(not f["retrieved"] for f in vm_b[0]["files"]), vm_b)

        # the next instance picks the restore up from the fd store
        since = nfs.mark()
        self.start_service(nfs)
        st = w.status()
        self.assertIn(st["state"], ("restoring", "finishing"), st)
        self.assertNotIn("held_sessions", st, "the restore took its sessions back")
        self.assertEqual(st["update_id"], prep["update_id"], st)
        self.assertEqual(w.vmm_list()["vm-b"]["state"], "awaiting")
        self.assertEqual(nfs.find_key("FDSTOREREMOVE", since=since), [], nfs.summary(since))
        # no abort after the jump: it would free vm-b's memory
        self.assertCtlError(w.ctl("abort"), "bad-state")
        self.assertEqual(len([s for s in w.fake_state()["sessions"]
                              if s["name"] == f"lu.{tag}.vm-b"]), 1)

        vm = w.start_vmm("vm-b", mem_mib=4, mode="self", wait=False)
        self.assertTrue(vm.wait_event("registered")["restore"])
        res = vm.wait_event("restored")
        self.assertEqual(res["verified_bytes"], 4 << 20, res)
        self.assertTrue(res["checksum_ok"], res)
        vm.wait_event("resumed")
        st = w.wait_state("idle")
        self.assertEqual(st["last_outcome"], "success", st)
        nfs.sync()
        self.assertEqual(nfs.stored_names(), [], nfs.summary())
        self.assertNothingPending()

        # this instance does not know when its predecessor started: the
        # timeline keeps what it knows and claims nothing else
        tl = w.report()["timeline"]
        if harness.HAVE_TSC:
            self.assertGreater(tl["freeze_barrier_us"], 0, tl)
            for k in ("kexec_boot_us", "restore_us", "handback_us"):
                self.assertIsNone(tl[k], f"{k}: {tl}")
            self.assertGreater(tl["blackout_us"], tl["freeze_barrier_us"], tl)
        else:
            self.assertIsNone(tl)


if __name__ == "__main__":
    harness.main()
