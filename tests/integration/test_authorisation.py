# SPDX-License-Identifier: LGPL-2.1-or-later
"""Authorisation: a VMM acts on its own VM only; the daemon's files are tight.

- A VM id held by a live VMM cannot be registered by anyone else (EEXIST),
  idle or in the middle of an update; the holder's session is untouched
  and its memory comes through the update intact.
- After the kexec, a VM's id can be claimed only by its owner's uid (or
  root): a peer of another uid, authorised through the configured group,
  gets EPERM; the VM stays awaiting, its session unretrieved, and its owner
  then gets it back with every byte intact. (Needs root to run as others.)
- A VMM cannot preserve another VM's memory into its own session (the
  kernel refuses a file preserved elsewhere: EBUSY), nor report RESUMED for
  a restore that is not its own (EBUSY): the other VM's session is left as
  it was and its memory checks out.
- The sockets are 0660 and the runtime directory the daemon creates is
  0755 whatever the umask it was started with (000 or 022); the state
  directory it creates is 0700 and the handover file in it 0600.
  (last-report.json is left out: json-c creates it 0666 & ~umask.)

Peers that are neither root nor in the group are refused on both sockets
in test_unauthorised_peer.py.
"""

import errno
import grp
import json
import os
import stat
import struct
import subprocess
import sys
import unittest

import harness
from test_vmm_protocol import (GET_SESSION, PREPARE, PREPARE_DONE, PRESERVE_FD, RESUMED,
                               RawVmm, token_msg)

NOBODY = 65534
OTHER_UID = 65533  # no passwd entry needed: a uid that is neither root nor the owner

# Started as root, drops to uid argv[3] with gid 65534 (the configured
# group), says HELLO with vm id argv[2] on the VMM socket argv[1], prints
# the REPLY's error and whether the daemon hung up afterwards.
CLAIM = r'''
import json, os, socket, struct, sys
path, vm_id, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.setgroups([])
os.setgid(65534)
os.setuid(uid)
v = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
v.settimeout(10)
v.connect(path)
v.send(struct.pack("<IIII41s7x", 1, 1, 1, 0, vm_id.encode()))
reply = v.recv(4096)
kind, seq, error, flags = struct.unpack("<IIiI", reply[:16])
try:
    rest = v.recv(4096)
except ConnectionResetError:
    rest = b""
print(json.dumps({"uid": os.getuid(), "kind": kind, "seq": seq, "error": error,
                  "flags": flags, "hangup": rest == b""}))
'''


class TestOwnVmOnly(harness.WorldTestCase):

    def raw(self) -> RawVmm:
        v = RawVmm(self.world.vmm_socket)
        self.addCleanup(v.close)
        return v

    def test_live_id_cannot_be_taken(self):
        w = self.world
        w.start_daemon()
        a = w.start_vmm("vm-a", mem_mib=4)
        self.assertEqual(self.raw().hello("vm-a"), -errno.EEXIST)
        self.assertEqual(w.vmm_list()["vm-a"]["pid"], a.pid)

        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        a.wait_event("prepared")
        before = harness.sessions_by_vm(w.fake_state())["vm-a"]
        # in the middle of the update, on a new connection each time
        for _ in range(3):
            self.assertEqual(self.raw().hello("vm-a"), -errno.EEXIST)
        lst = w.vmm_list()
        self.assertEqual(sorted(lst), ["vm-a"], lst)
        self.assertEqual((lst["vm-a"]["pid"], lst["vm-a"]["state"]), (a.pid, "prepared"), lst)
        self.assertEqual(harness.sessions_by_vm(w.fake_state())["vm-a"], before)
        self.assertEqual(w.status()["state"], "prepared")
        self.assertVerifiedIntact(a, 4 << 20)

        self.assertCtlOk(w.ctl("commit"))
        new = w.simulate_reboot(boot)
        self.assertRestoredIntact(new["vm-a"], prep["update_id"], 4 << 20)
        # restored and running: still its own
        self.assertEqual(self.raw().hello("vm-a"), -errno.EEXIST)
        self.assertEqual(w.wait_state("idle")["last_outcome"], "success")
        self.assertVerifiedIntact(new["vm-a"], 4 << 20)

    def test_cannot_preserve_another_vms_memory(self):
        w = self.world
        w.start_daemon()
        a = w.start_vmm("vm-a", mem_mib=4)
        b = self.raw()
        self.assertEqual(b.hello("vm-b"), 0)
        # vm-b's process can open vm-a's guest RAM (same uid): /proc/PID/fd
        ram = [f"/proc/{a.pid}/fd/{n}" for n in os.listdir(f"/proc/{a.pid}/fd")
               if os.readlink(f"/proc/{a.pid}/fd/{n}").startswith("/memfd:guest-ram-0")]
        self.assertEqual(len(ram), 1, os.listdir(f"/proc/{a.pid}/fd"))
        stolen = os.open(ram[0], os.O_RDWR)
        self.addCleanup(os.close, stolen)

        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare",
                    "params": {"kernel": w.make_kernel_image()}})
            self.assertEqual(b.recv()[0], PREPARE)
            a.wait_event("prepared")
            before = harness.sessions_by_vm(w.fake_state())["vm-a"]
            # preserved in vm-a's session already: the kernel refuses it
            b.seq += 1
            self.assertEqual(b.request(token_msg(PRESERVE_FD, b.seq, 1), [stolen])[0],
                             -errno.EBUSY)
            b.seq += 1
            self.assertEqual(b.request(token_msg(PREPARE_DONE, b.seq, 0)[:8])[0], 0)
            self.assertTrue(c.read_reply()["ok"])
        sessions = harness.sessions_by_vm(w.fake_state())
        self.assertEqual(sessions["vm-a"], before)
        self.assertEqual(sessions["vm-b"]["files"], [], sessions["vm-b"])
        self.assertEqual(w.vmm_list()["vm-b"]["fds"], 0)
        self.assertEqual(w.vmm_list()["vm-a"]["fds"], 2)

        # vm-a's memory is its own and intact (abort: THAW checks every byte)
        self.assertCtlOk(w.ctl("abort"))
        self.assertThawedIntact(a)
        self.assertVerifiedIntact(a, 4 << 20)
        self.assertNothingPending()

    def test_resumed_for_another_restore(self):
        w = self.world
        w.start_daemon()
        w.start_vmm("vm-a", mem_mib=4)
        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))
        w.simulate_reboot(boot, restart_vmms=[])
        self.assertEqual(w.vmm_list()["vm-a"]["state"], "awaiting")
        before = harness.sessions_by_vm(w.fake_state())["vm-a"]

        # a new VM during the restore: it has no restore of its own to report
        b = self.raw()
        self.assertEqual(b.hello("vm-b"), 0)
        b.seq += 1
        self.assertEqual(b.request(token_msg(RESUMED, b.seq, 0)[:8])[0], -errno.EBUSY)
        b.seq += 1
        self.assertEqual(b.request(token_msg(GET_SESSION, b.seq, 0)[:8])[0], -errno.EBUSY)
        lst = w.vmm_list()
        self.assertEqual(lst["vm-a"]["state"], "awaiting", lst)
        self.assertFalse(lst["vm-a"]["connected"], lst)
        self.assertEqual(lst["vm-b"]["state"], "registered", lst)
        after = harness.sessions_by_vm(w.fake_state())["vm-a"]
        self.assertEqual(after, before)
        # the daemon holds the session (retrieved at its start); the VM's files
        # are still the kernel's: nobody took them, nothing was finished
        self.assertFalse(after["finished"], after)
        self.assertEqual([f["retrieved"] for f in after["files"]], [False, False], after)
        self.assertEqual(w.status()["state"], "restoring")

        again = w.start_vmm("vm-a", mem_mib=4, wait=False)
        self.assertRestoredIntact(again, prep["update_id"], 4 << 20)
        self.assertEqual(w.wait_state("idle")["last_outcome"], "success")


class TestOtherUid(harness.WorldTestCase):
    """A VM owned by uid 65534 (in the configured group) across a kexec."""

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to run peers as other uids")
        super().setUp()
        w = self.world
        self.setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        "--"]
        for f in (w.bin["refvmm"], w.bin["preload"]):
            cp = subprocess.run(self.setpriv + ["test", "-r", f])
            if cp.returncode != 0:
                raise unittest.SkipTest(f"uid {NOBODY} cannot read {f}")
        # the fake kernel's shim in the VMM asks its server who it is
        os.chmod(w.fk_socket, 0o666)
        self.group = grp.getgrgid(NOBODY).gr_name
        self.start_daemon([])

    def start_daemon(self, args) -> None:
        w = self.world
        w.start_daemon("--group", self.group)
        # let the other uids reach the sockets: the filesystem is not what is tested
        for d in (w.dir, w.runtime_dir):
            os.chmod(d, 0o755)
        for s in (w.control_socket, w.vmm_socket):
            os.chmod(s, 0o666)

    def start_owned_vmm(self, vm_id: str) -> harness.Vmm:
        w = self.world
        args = ["--vm-id", vm_id, "--socket", w.vmm_socket, "--mem-mib", "4"]
        v = harness.Vmm(w, w._name(f"vmm-{vm_id}"), vm_id,
                        self.setpriv + [w.bin["refvmm"], *args])
        w.vmms[vm_id] = v
        return v

    def claim(self, vm_id: str, uid: int) -> dict:
        w = self.world
        cp = subprocess.run([sys.executable, "-c", CLAIM, w.vmm_socket, vm_id, str(uid)],
                            capture_output=True, timeout=harness.TIMEOUT)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode())
        out = json.loads(cp.stdout)
        self.assertEqual(out["uid"], uid, out)
        return out

    def test_other_uid_cannot_claim_after_reboot(self):
        w = self.world
        owner = self.start_owned_vmm("vm-owned")
        owner.wait_event("running")
        self.assertEqual(w.vmm_list()["vm-owned"]["uid"], NOBODY)
        # while it runs, nobody else may have the id either
        out = self.claim("vm-owned", OTHER_UID)
        self.assertEqual((out["error"], out["hangup"]), (-errno.EEXIST, True), out)

        boot = w.fake_state()["boot"]
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        owner.wait_event("prepared")
        self.assertCtlOk(w.ctl("commit"))
        w.simulate_reboot(boot, restart_vmms=[], start_daemon=self.start_daemon)
        lst = w.vmm_list()
        self.assertEqual((lst["vm-owned"]["state"], lst["vm-owned"]["uid"]), ("awaiting", NOBODY))
        before = harness.sessions_by_vm(w.fake_state())["vm-owned"]

        # another uid, authorised through the group, claims the VM: EPERM, hang-up
        for _ in range(2):
            out = self.claim("vm-owned", OTHER_UID)
            self.assertEqual(out["kind"], harness.LU_VMM_MSG_REPLY, out)
            self.assertEqual(out["error"], -errno.EPERM, out)
            self.assertTrue(out["hangup"], out)
        lst = w.vmm_list()
        self.assertEqual(lst["vm-owned"]["state"], "awaiting", lst)
        self.assertFalse(lst["vm-owned"]["connected"], lst)
        self.assertEqual(lst["vm-owned"]["uid"], NOBODY, lst)
        after = harness.sessions_by_vm(w.fake_state())["vm-owned"]
        self.assertEqual(after, before, "the other uid's claim touched the session")
        # the daemon holds the session (retrieved at its start); the VM's files
        # are still the kernel's: nobody took them, nothing was finished
        self.assertFalse(after["finished"], after)
        self.assertEqual([f["retrieved"] for f in after["files"]], [False, False], after)
        self.assertEqual(w.status()["state"], "restoring")

        # the owner comes back: its memory, every byte
        back = self.start_owned_vmm("vm-owned")
        reg = back.wait_event("registered")
        self.assertTrue(reg["restore"], reg)
        res = back.wait_event("restored")
        self.assertEqual(res["update_id"], prep["update_id"], res)
        self.assertEqual(res["verified_bytes"], 4 << 20, res)
        self.assertTrue(res["checksum_ok"], res)
        back.wait_event("resumed")
        self.assertEqual(w.wait_state("idle")["last_outcome"], "success")
        self.assertNothingPending()


# Started as root, drops to uid and gid argv[2] (in no configured group),
# connects to the VMM socket argv[1] and says nothing; prints what the
# daemon sent unasked and whether it hung up.
SILENT = r'''
import json, os, socket, struct, sys
path, uid = sys.argv[1], int(sys.argv[2])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
v = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
v.settimeout(10)
v.connect(path)
reply = v.recv(4096)
kind, seq, error, flags = struct.unpack("<IIiI", reply[:16])
try:
    rest = v.recv(4096)
except ConnectionResetError:
    rest = b""
print(json.dumps({"kind": kind, "seq": seq, "error": error, "hangup": rest == b""}))
'''


class TestStrangers(harness.WorldTestCase):
    """A peer that is neither root nor in the group is refused at connect,
    before it says anything: silent strangers hold no VMM slot, which VMMs
    coming back for their memory after a kexec would need."""

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to run peers as other uids")
        super().setUp()

    def test_silent_strangers_hold_no_slot(self):
        w = self.world
        w.start_daemon("--group", grp.getgrgid(NOBODY).gr_name, "--max-vmms", "2")
        # the group may reach both sockets: they are its, mode 0660
        for path in (w.vmm_socket, w.control_socket):
            st = os.stat(path)
            self.assertEqual((st.st_gid, stat.S_IMODE(st.st_mode)), (NOBODY, 0o660), path)
        for d in (w.dir, w.runtime_dir):
            os.chmod(d, 0o755)
        os.chmod(w.vmm_socket, 0o666)
        strangers = [subprocess.Popen([sys.executable, "-c", SILENT, w.vmm_socket, str(OTHER_UID)],
                                      stdout=subprocess.PIPE, text=True) for _ in range(3)]
        for p in strangers:
            out, _ = p.communicate(timeout=harness.TIMEOUT)
            self.assertEqual(p.returncode, 0)
            got = json.loads(out)
            self.assertEqual((got["kind"], got["seq"], got["error"], got["hangup"]),
                             (harness.LU_VMM_MSG_REPLY, 0, -errno.EACCES, True), got)
        # both slots are still free for VMMs
        for vm_id in ("vm-1", "vm-2"):
            v = RawVmm(w.vmm_socket)
            self.addCleanup(v.close)
            self.assertEqual(v.hello(vm_id), 0, vm_id)
        self.assertEqual(sorted(w.vmm_list()), ["vm-1", "vm-2"])


class TestModes(harness.WorldTestCase):
    """The modes the daemon gives its own files, whatever its umask."""

    def start_with_umask(self, mask: int) -> None:
        w = self.world
        # the daemon creates both directories itself
        os.rmdir(w.runtime_dir)
        os.rmdir(w.state_dir)
        old = os.umask(mask)
        try:
            w.start_daemon()
        finally:
            os.umask(old)

    def mode(self, path: str) -> int:
        return stat.S_IMODE(os.lstat(path).st_mode)

    def check_modes(self, mask: int) -> None:
        w = self.world
        self.start_with_umask(mask)
        st = os.stat(w.runtime_dir)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(self.mode(w.runtime_dir), 0o755, f"runtime dir, umask {mask:03o}")
        self.assertEqual((st.st_uid, st.st_gid), (os.geteuid(), os.getegid()))
        for sock in (w.control_socket, w.vmm_socket):
            st = os.lstat(sock)
            self.assertTrue(stat.S_ISSOCK(st.st_mode), sock)
            self.assertEqual(self.mode(sock), 0o660, f"{sock}, umask {mask:03o}")
            self.assertEqual((st.st_uid, st.st_gid), (os.geteuid(), os.getegid()), sock)
        self.assertEqual(sorted(os.listdir(w.runtime_dir)), ["control.sock", "vmm.sock"])

        # the state directory and the handover file appear at commit
        w.start_vmm("vm-a", mem_mib=1)
        boot = w.fake_state()["boot"]
        self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertCtlOk(w.ctl("commit"))
        w.daemon.wait()  # it dies in reboot(): the handover file is there now
        self.assertEqual(self.mode(w.state_dir), 0o700, f"state dir, umask {mask:03o}")
        names = [n for n in os.listdir(w.state_dir) if not n.startswith(".")]
        self.assertTrue(names, "no handover file after commit")
        for n in names:
            self.assertEqual(self.mode(os.path.join(w.state_dir, n)), 0o600,
                             f"{n}, umask {mask:03o}")
        w.simulate_reboot(boot)
        w.vmms["vm-a"].wait_event("resumed")
        w.wait_state("idle")

    def test_modes_umask_022(self):
        self.check_modes(0o022)

    def test_modes_umask_000(self):
        self.check_modes(0o000)

if __name__ == "__main__":
    harness.main()
