# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VMM socket against a VMM that speaks the wire protocol by hand.

Malformed or out-of-turn messages end that VMM's connection and nothing
else; every refusal carries the documented errno; the limits (VMMs, fds
per VMM, control clients) hold at and past their value.
"""

import errno
import os
import socket
import struct

import harness

HELLO, PRESERVE_FD, GET_SESSION, DECLARE_TOKEN, PREPARE_DONE, FROZEN, RESUMED = 1, 2, 3, 4, 5, 6, 7
REPLY, PREPARE, FREEZE, THAW, RESTORE = 64, 65, 66, 67, 68
VERSION = 1


def hello_msg(seq: int, vm_id: str, version: int = VERSION) -> bytes:
    return struct.pack("<IIII41s7x", HELLO, seq, version, 0, vm_id.encode())


def token_msg(kind: int, seq: int, token: int) -> bytes:
    return struct.pack("<IIQ", kind, seq, token)


class RawVmm:
    """A VMM connection with nothing between the test and the wire."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(harness.TIMEOUT)
        self.sock.connect(path)
        self.seq = 0

    def close(self):
        self.sock.close()

    def send(self, data: bytes, fds: list[int] | None = None) -> None:
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.send(data)

    def recv(self) -> tuple[int, bytes, list[int]]:
        """(type, message, fds); type 0 at EOF."""
        msg, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 4)
        if not msg:
            return 0, b"", fds
        return struct.unpack_from("<I", msg)[0], msg, fds

    def request(self, data: bytes, fds: list[int] | None = None) -> tuple[int, list[int]]:
        """Send, then return (error, fds) of the REPLY, skipping daemon messages."""
        self.send(data, fds)
        while True:
            kind, msg, got = self.recv()
            if kind == 0:
                raise harness.HarnessError("the daemon closed the connection")
            if kind == REPLY:
                _t, _seq, error, _flags = struct.unpack("<IIiI", msg)
                return error, got
            for fd in got:
                os.close(fd)

    def hello(self, vm_id: str, version: int = VERSION) -> int:
        self.seq += 1
        return self.request(hello_msg(self.seq, vm_id, version))[0]

    def expect_hangup(self) -> None:
        while True:
            kind, _msg, fds = self.recv()
            for fd in fds:
                os.close(fd)
            if kind == 0:
                return


class TestVmmProtocol(harness.WorldTestCase):

    def raw(self) -> RawVmm:
        v = RawVmm(self.world.vmm_socket)
        self.addCleanup(v.close)
        return v

    def test_malformed_messages_end_only_that_connection(self):
        w = self.world
        w.start_daemon()
        good = w.start_vmm("vm-good", mem_mib=4)

        cases = {
            "before HELLO": token_msg(PRESERVE_FD, 1, 1),
            "short HELLO": hello_msg(1, "vm-x")[:20],
            "unknown type": struct.pack("<IIQ", 99, 1, 0),
            "daemon's type": struct.pack("<IIiI", REPLY, 1, 0, 0),
            "bad vm id": hello_msg(1, "../etc"),
            "nonzero flags": struct.pack("<IIII41s7x", HELLO, 1, VERSION, 1, b"vm-x"),
        }
        for what, data in cases.items():
            with self.subTest(what):
                v = self.raw()
                v.send(data)
                v.expect_hangup()

        # a second HELLO on a registered connection
        v = self.raw()
        self.assertEqual(v.hello("vm-twice"), 0)
        v.send(hello_msg(9, "vm-twice"))
        v.expect_hangup()

        self.assertTrue(good.running())
        self.assertEqual(sorted(w.vmm_list()), ["vm-good"])
        self.assertEqual(w.status()["state"], "idle")

    def test_refusals_carry_their_errno(self):
        w = self.world
        w.start_daemon()
        a = self.raw()
        self.assertEqual(a.hello("vm-a"), 0)
        # the id is taken while its VMM is connected
        self.assertEqual(self.raw().hello("vm-a"), -errno.EEXIST)
        self.assertEqual(self.raw().hello("vm-v3", version=VERSION + 2), -errno.EPROTONOSUPPORT)

        # preserving outside an update's prepare phase
        fd = os.memfd_create("ram")
        self.addCleanup(os.close, fd)
        a.seq += 1
        self.assertEqual(a.request(token_msg(PRESERVE_FD, a.seq, 1), [fd])[0], -errno.EBUSY)
        a.seq += 1
        self.assertEqual(a.request(token_msg(GET_SESSION, a.seq, 0)[:8])[0], -errno.EBUSY)
        a.seq += 1
        self.assertEqual(a.request(token_msg(PREPARE_DONE, a.seq, 0)[:8])[0], -errno.EBUSY)
        a.seq += 1
        self.assertEqual(a.request(token_msg(RESUMED, a.seq, 0)[:8])[0], -errno.EBUSY)
        self.assertEqual(w.status()["state"], "idle")

    def test_fds_per_vmm_limit(self):
        w = self.world
        w.start_daemon("--max-fds-per-vmm", "2", "--prepare-timeout", "20000")
        v = self.raw()
        self.assertEqual(v.hello("vm-raw"), 0)
        image = w.make_kernel_image()
        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare", "params": {"kernel": image}})
            kind, msg, _ = v.recv()
            self.assertEqual(kind, PREPARE)
            max_fds = struct.unpack_from("<I", msg, 44)[0]
            self.assertEqual(max_fds, 2)

            fds = [os.memfd_create(f"ram{i}") for i in range(3)]
            for fd in fds:
                os.ftruncate(fd, 4096)
                self.addCleanup(os.close, fd)
            results = []
            for i, fd in enumerate(fds):
                v.seq += 1
                results.append(v.request(token_msg(PRESERVE_FD, v.seq, i + 1), [fd])[0])
            # at the limit: fine; past it: E2BIG; a taken token: EEXIST
            self.assertEqual(results, [0, 0, -errno.E2BIG])
            v.seq += 1
            self.assertEqual(v.request(token_msg(PRESERVE_FD, v.seq, 1), [fds[0]])[0], -errno.E2BIG)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PREPARE_DONE, v.seq, 0)[:8])[0], 0)
            rep = c.read_reply()
            self.assertTrue(rep["ok"], rep)
        session = [s for s in w.fake_state()["sessions"] if s["name"].endswith(".vm-raw")][0]
        self.assertEqual(sorted(f["token"] for f in session["files"]), [1, 2], session)
        self.assertEqual(w.vmm_list()["vm-raw"]["fds"], 2)
        self.assertCtlOk(w.ctl("abort"))

    def test_unsupported_fd_is_enoent(self):
        w = self.world
        w.start_daemon()
        v = self.raw()
        self.assertEqual(v.hello("vm-raw"), 0)
        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare",
                    "params": {"kernel": w.make_kernel_image()}})
            self.assertEqual(v.recv()[0], PREPARE)
            r, wfd = os.pipe()
            self.addCleanup(os.close, r)
            self.addCleanup(os.close, wfd)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PRESERVE_FD, v.seq, 7), [r])[0], -errno.ENOENT)
            # the same token is still free: the refusal cost nothing
            fd = os.memfd_create("ram")
            self.addCleanup(os.close, fd)
            os.ftruncate(fd, 4096)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PRESERVE_FD, v.seq, 7), [fd])[0], 0)
            # DECLARE_TOKEN without having taken the session is refused
            v.seq += 1
            self.assertEqual(v.request(token_msg(DECLARE_TOKEN, v.seq, 8))[0], -errno.EBADFD)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PREPARE_DONE, v.seq, 0)[:8])[0], 0)
            self.assertTrue(c.read_reply()["ok"])
        self.assertCtlOk(w.ctl("abort"))
        # abort sent THAW
        kind, msg, _ = v.recv()
        self.assertEqual(kind, THAW)
        self.assertEqual(struct.unpack("<IIiI", msg)[2], -errno.ECANCELED)

    def test_vmm_limit(self):
        w = self.world
        w.start_daemon("--max-vmms", "2")
        a, b = self.raw(), self.raw()
        self.assertEqual(a.hello("vm-1"), 0)
        self.assertEqual(b.hello("vm-2"), 0)
        c = self.raw()
        kind, msg, _ = c.recv()
        self.assertEqual(kind, REPLY)
        self.assertEqual(struct.unpack("<IIiI", msg)[2], -errno.EUSERS)
        c.expect_hangup()
        # a place frees up when a VMM leaves
        a.close()
        for _ in range(200):
            if "vm-1" not in w.vmm_list():
                break
            harness.time.sleep(0.01)
        self.assertEqual(self.raw().hello("vm-3"), 0)

    def test_client_limit(self):
        w = self.world
        w.start_daemon("--max-clients", "2")
        with w.api() as c1, w.api() as c2:
            self.assertTrue(c1.call("status")["ok"])
            self.assertTrue(c2.call("status")["ok"])
            with w.api() as c3:
                rep = c3.read_reply()
                self.assertFalse(rep["ok"], rep)
                self.assertEqual(rep["error"]["code"], "too-many-clients", rep)
                self.assertEqual(c3.wait_eof(), [])
        # the slots come back once the daemon has seen the clients go
        for _ in range(200):
            with w.api() as c:
                c.send({"api": 1, "id": 1, "method": "status"})
                rep = c.read()
            if rep.get("ok"):
                break
            self.assertEqual(rep["error"]["code"], "too-many-clients", rep)
            harness.time.sleep(0.01)
        self.assertTrue(rep["ok"], rep)


if __name__ == "__main__":
    harness.main()
