# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 7: a peer that is neither root, the daemon's user, nor in its group.

The socket files are 0660 root; the test opens them (and the path to them)
to everyone, so that only the daemon's own SO_PEERCRED check stands between
uid 65534 and the API. That check must refuse: permission-denied on the
control socket, an EACCES reply (and hang-up) to HELLO on the VMM socket.
Needs root (to drop to another uid); skipped otherwise.
"""

import errno
import grp
import json
import os
import stat
import subprocess
import sys
import unittest

import harness

NOBODY = 65534
OTHER_GID = 100  # "users": a gid that is not the configured group

# Run as uid/gid 65534 (setuid before connecting): talk to both sockets, print what came back as JSON.
CHILD = r'''
import json, os, socket, struct, sys
# started as root (its interpreter may live where nobody cannot read), it
# drops to nobody before it touches a socket
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
control, vmm = sys.argv[1], sys.argv[2]
out = {"uid": os.getuid(), "gid": os.getgid()}

def drain(sock, size, prefix):
    """Everything the daemon sends until it hangs up. A peer that closes
    with our request unread makes the first recv() fail with ECONNRESET
    (the kernel reports sk_err before the queue); what it sent before
    closing is still queued behind that."""
    chunks, resets = [], 0
    while True:
        try:
            chunk = sock.recv(size)
        except ConnectionResetError:
            resets += 1
            if resets > 3:
                break
            continue
        except OSError as e:
            out[prefix + "_recv_error"] = e.errno
            break
        if not chunk:
            out[prefix + "_eof"] = True
            break
        chunks.append(chunk)
    out[prefix + "_resets"] = resets
    return chunks


c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(10)
c.connect(control)
try:
    c.sendall(b'{"api":1,"id":1,"method":"status"}\n')
except OSError as e:
    out["control_send_error"] = e.errno
data = b"".join(drain(c, 65536, "control"))
out["control_lines"] = [json.loads(l) for l in data.splitlines() if l.strip()]

v = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
v.settimeout(10)
v.connect(vmm)
hello = struct.pack("<IIII41s7x", 1, 1, 1, 0, b"intruder")
try:
    v.send(hello)
except OSError as e:
    out["vmm_send_error"] = e.errno
out["vmm_packets"] = [list(struct.unpack("<IIiI", p[:16])) if len(p) >= 16 else p.hex()
                      for p in drain(v, 4096, "vmm")]
print(json.dumps(out))
'''


class TestUnauthorisedPeer(harness.WorldTestCase):

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to run a peer as another uid")
        super().setUp()
        w = self.world
        w.start_daemon()
        self.vmm = w.start_vmm("vm-a")
        # Let uid 65534 reach the sockets: the filesystem is not what is tested.
        for d in (w.dir, w.runtime_dir):
            os.chmod(d, 0o755)
        for s in (w.control_socket, w.vmm_socket):
            st = os.stat(s)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(st.st_mode & 0o777, 0o660, "the daemon creates its sockets 0660")
            os.chmod(s, 0o666)

    def test_refused_by_peercred(self):
        w = self.world
        cp = subprocess.run([sys.executable, "-c", CHILD, w.control_socket, w.vmm_socket],
                            capture_output=True, timeout=harness.TIMEOUT)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode())
        out = json.loads(cp.stdout)
        self.assertEqual((out["uid"], out["gid"]), (NOBODY, NOBODY), out)

        # control: one permission-denied error, then the daemon hangs up
        lines = out["control_lines"]
        self.assertEqual(len(lines), 1, out)
        self.assertIs(lines[0]["ok"], False, out)
        self.assertEqual(lines[0]["error"]["code"], "permission-denied", out)
        self.assertTrue(out.get("control_eof"), out)
        self.assertNotIn("result", lines[0], "no status may leak to the intruder")

        # VMM socket: a REPLY with -EACCES, then hang-up; never registered
        pk = out["vmm_packets"]
        self.assertGreaterEqual(len(pk), 1, out)
        self.assertEqual(pk[0][0], harness.LU_VMM_MSG_REPLY, out)
        self.assertEqual(pk[0][2], -errno.EACCES, out)
        self.assertEqual(len(pk), 1, f"nothing after the refusal: {out}")
        self.assertTrue(out.get("vmm_eof"), out)
        self.assertNotIn("intruder", w.vmm_list())

        # the real clients are still served; root's VMM unaffected
        st = w.status()
        self.assertEqual(st["vmms"], {"total": 1, "registered": 1}, st)
        self.assertTrue(self.vmm.running())

    def test_liveupdatectl_as_nobody(self):
        w = self.world
        r = w.ctl("status", user=NOBODY)
        self.assertEqual(r.rc, harness.CTL_PERMISSION, str(r))
        self.assertEqual(r.json.get("code"), "permission-denied", str(r))
        # nor can it prepare
        r = w.ctl("prepare", w.make_kernel_image(), user=NOBODY)
        self.assertEqual(r.rc, harness.CTL_PERMISSION, str(r))
        self.assertNothingPending()
        self.assertEqual(self.vmm.names(), ["registered", "running"])

    def test_refvmm_as_nobody(self):
        w = self.world
        # the reference VMM itself, as an unauthorised user: refused at HELLO
        p = subprocess.Popen([w.bin["refvmm"], "--vm-id", "intruder", "--socket", w.vmm_socket,
                              "--mem-mib", "1"], env=w.c_env(), user=NOBODY, group=NOBODY,
                             extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=harness.TIMEOUT)
        self.assertIsNone(harness.sanitizer_report(err.decode()), err.decode())
        self.assertEqual(p.returncode, harness.VMM_EXIT_ERROR, (out, err))
        events = [json.loads(l) for l in out.splitlines() if l.strip()]
        self.assertEqual(events[0]["event"], "error", events)
        self.assertNotIn("registered", [e["event"] for e in events], events)
        self.assertNotIn("intruder", w.vmm_list())
        # the VMM should learn why: the daemon's refusal carries -EACCES
        self.expect("Permission denied" in events[0]["message"],
                    f"refvmm as uid {NOBODY} should report EACCES from the daemon's refusal, "
                    f"got: {events[0]['message']!r} (libvmm's wait_for() drops the seq-0 REPLY "
                    f"the daemon sends from manager_vmm_accept())")


class TestConfiguredGroup(harness.WorldTestCase):
    """--group GROUP lets its members in, by primary or supplementary gid."""

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to run a peer as another uid")
        super().setUp()
        w = self.world
        self.group = grp.getgrgid(NOBODY).gr_name
        w.start_daemon("--group", self.group)
        for d in (w.dir, w.runtime_dir):
            os.chmod(d, 0o755)
        for sock in (w.control_socket, w.vmm_socket):
            os.chmod(sock, 0o666)

    def test_primary_group(self):
        w = self.world
        r = w.ctl("status", user=NOBODY)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.json["state"], "idle", str(r))

    def test_supplementary_group(self):
        w = self.world
        argv = [w.bin["ctl"], "--json", "status"]
        cp = subprocess.run(argv, env=w.c_env(), capture_output=True, timeout=harness.TIMEOUT,
                            user=NOBODY, group=OTHER_GID, extra_groups=[NOBODY])
        self.assertEqual(cp.returncode, 0, cp.stderr.decode())
        # and without the group, the same uid is refused
        cp = subprocess.run(argv, env=w.c_env(), capture_output=True, timeout=harness.TIMEOUT,
                            user=NOBODY, group=OTHER_GID, extra_groups=[])
        self.assertEqual(cp.returncode, harness.CTL_PERMISSION, cp.stderr.decode())

    def test_vmm_of_the_group_registers(self):
        w = self.world
        p = subprocess.Popen([w.bin["refvmm"], "--vm-id", "vm-nobody", "--socket", w.vmm_socket,
                              "--mem-mib", "1"], env=w.c_env(), user=NOBODY, group=NOBODY,
                             extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline()
            self.assertEqual(json.loads(line)["event"], "registered", line)
            lst = w.vmm_list()
            self.assertEqual(lst["vm-nobody"]["uid"], NOBODY, lst)
        finally:
            p.terminate()
            p.communicate(timeout=harness.TIMEOUT)


if __name__ == "__main__":
    harness.main()
