# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon's limits, each at its value and one past it.

- control requests: a line of exactly 64 KiB (newline included) is served,
  one byte more is too-large and the connection closed;
- control clients: the default limit is 64 (man/liveupdated-api.md): the
  64th connection is served, the 65th gets too-many-clients and is closed;
- unread events: a subscriber that never reads may have exactly 1 MiB of
  events queued in the daemon and stays connected; the next event
  disconnects it (no error line: its queue is what is full). What it gets
  is what the kernel's socket buffer held (whole events, the last one
  possibly cut where the daemon's partial write stopped), then EOF;
  everyone else is served on;
- VMM messages: every type has one exact size; one byte more, a packet of
  LU_VMM_MSG_MAX and one beyond it end the connection, and nothing the
  daemon received stays open in it;
- fds per message: PRESERVE_FD carries exactly one; two, or as many as a
  packet can carry, or one on a HELLO end the connection, and the daemon
  holds no fd more afterwards;
- fds per VMM through DECLARE_TOKEN (VMMs that preserve into the session
  themselves): at --max-fds-per-vmm fine, past it E2BIG, counted together
  with PRESERVE_FD; the option itself takes 1..250 (LU_VMM_FDS_MAX).

The VMM and client limits set by option (--max-vmms, --max-clients) and
PRESERVE_FD past --max-fds-per-vmm are in test_vmm_protocol.py.
"""

import collections
import errno
import itertools
import fcntl
import json
import os
import select
import socket
import string
import struct
import termios

import harness
from test_vmm_protocol import (DECLARE_TOKEN, GET_SESSION, PREPARE, PREPARE_DONE,
                               PRESERVE_FD, RawVmm, hello_msg, token_msg)

REQUEST_MAX = 64 * 1024          # CONTROL_REQUEST_MAX, newline included
CLIENTS_DEFAULT = 64             # CONFIG_MAX_CLIENTS_DEFAULT
EVENTS_MAX = 1024 * 1024         # CONTROL_OUTPUT_MAX: unread bytes per client
VMM_MSG_MAX = 4096               # LU_VMM_MSG_MAX
FDS_MAX = 250                    # LU_VMM_FDS_MAX
SCM_MAX_FD = 253


def fd_links(pid: int) -> dict[int, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def fd_kind(target: str) -> str:
    """socket, anon_inode:[...], or the path of an fd's file."""
    return "socket" if target.startswith("socket:") else target


def unread(sock: socket.socket) -> int:
    """Bytes waiting in sock's receive queue (SIOCINQ)."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def hung_up(sock: socket.socket) -> bool:
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    return any(ev & (select.POLLHUP | select.POLLERR) for _fd, ev in p.poll(0))


class TestLimits(harness.WorldTestCase):

    def raw(self) -> RawVmm:
        v = RawVmm(self.world.vmm_socket)
        self.addCleanup(v.close)
        return v

    def settle(self, probe: harness.ApiClient) -> None:
        """Two round trips: the daemon has handled every earlier hang-up."""
        harness.result(probe.call("status"))
        harness.result(probe.call("status"))

    # -- control requests ------------------------------------------------------------

    def padded_status(self, total: int) -> bytes:
        """A valid status request of exactly total bytes, newline included."""
        head, tail = b'{"api":1,"id":"', b'","method":"status"}\n'
        return head + b"x" * (total - len(head) - len(tail)) + tail

    def test_request_size(self):
        w = self.world
        w.start_daemon()
        with w.api() as c:
            line = self.padded_status(REQUEST_MAX)
            self.assertEqual(len(line), REQUEST_MAX)
            c.send_raw(line)
            reply = c.read_reply()
            self.assertIs(reply["ok"], True, str(reply)[:200])
            self.assertEqual(len(reply["id"]), REQUEST_MAX - 36)
            # and the connection goes on
            self.assertIs(c.call("status")["ok"], True)
        with w.api() as c:
            c.send_raw(self.padded_status(REQUEST_MAX + 1))
            msgs = c.wait_eof()
        self.assertEqual(len(msgs), 1, str(msgs)[:300])
        self.assertEqual(msgs[0]["error"]["code"], "too-large", msgs)
        self.assertTrue(w.daemon.running())

    # -- control clients -----------------------------------------------------------

    def test_default_client_limit(self):
        w = self.world
        w.start_daemon()
        clients = [w.api()]
        try:
            self.settle(clients[0])  # the harness's readiness probe is gone
            while len(clients) < CLIENTS_DEFAULT:
                c = w.api()
                clients.append(c)
                self.assertIs(c.call("status")["ok"], True, f"client {len(clients)}")
            with w.api() as extra:
                rep = extra.read_reply()
                self.assertEqual(rep["error"]["code"], "too-many-clients", rep)
                self.assertEqual(extra.wait_eof(), [])
            # the 64 are all still served
            for c in clients:
                self.assertIs(c.call("status")["ok"], True)
        finally:
            for c in clients:
                c.close()

    # -- unread events ---------------------------------------------------------------

    def test_unread_events(self):
        w = self.world
        w.start_daemon()
        probe = w.api()
        self.addCleanup(probe.close)
        stalled = w.subscribe()  # reads its subscribe reply, then nothing more
        self.addCleanup(stalled.close)
        self.assertEqual(stalled.buf, b"")
        reader = w.subscribe()
        self.addCleanup(reader.close)
        self.settle(probe)

        alphabet = string.ascii_letters + string.digits + "._-"
        fresh = {n: itertools.product(alphabet, repeat=n) for n in range(1, 41)}
        sent = 0      # bytes of events the daemon sent (or queued) to each subscriber
        base = None   # an event's length without its vm_id

        def emit(lengths: list[int]) -> None:
            """One vmm event per length: a HELLO with a vm id that long."""
            nonlocal sent, base
            conns, ids = [], []
            for n in lengths:
                vm_id = "".join(next(fresh[n]))
                v = RawVmm(w.vmm_socket)
                conns.append(v)
                ids.append(vm_id)
                v.send(hello_msg(1, vm_id))
            for v in conns:
                kind, msg, _ = v.recv()
                self.assertEqual(kind, harness.LU_VMM_MSG_REPLY)
                self.assertEqual(struct.unpack("<IIiI", msg)[2], 0)
                v.close()
            for vm_id in ids:
                line = reader.read_line()
                self.assertIsNotNone(line, "the reading subscriber was dropped")
                ev = json.loads(line)
                self.assertEqual((ev["event"], ev["state"]), ("vmm", "registered"), ev)
                size = len(line) + 1
                sent += size
                if base is None:
                    base = size - len(ev["vm_id"])
                self.assertEqual(size - len(ev["vm_id"]), base, ev)
            self.settle(probe)  # the daemon's emit loop reached every client

        def queued() -> int:
            """Bytes the daemon holds for the stalled subscriber."""
            return sent - unread(stalled.sock)

        emit([10])
        # fill up to a few events short of the limit, in batches
        while EVENTS_MAX - queued() > 40 * (base + 40):
            room = EVENTS_MAX - queued()
            self.assertFalse(hung_up(stalled.sock), f"dropped with {queued()} bytes queued")
            emit([40] * min(64, room // (base + 40) - 30))
        self.assertGreater(queued(), EVENTS_MAX // 2, "the kernel's buffer took it all?")

        # then exactly to the limit: lengths base+1 .. base+40 add up to any
        # room from 3 * (base + 1) on (base is about 80)
        def plan(room: int) -> list[int]:
            if room == 0:
                return []
            for n in range(40, 0, -1):
                rest = room - base - n
                if rest == 0 or rest >= 3 * (base + 1) or (
                        base + 1 <= rest <= base + 40) or (2 * base + 2 <= rest <= 2 * base + 80):
                    return [n] + plan(rest)
            self.fail(f"cannot fill {room} bytes with events of {base + 1}..{base + 40}")

        for n in plan(EVENTS_MAX - queued()):
            self.assertFalse(hung_up(stalled.sock), f"dropped with {queued()} bytes queued")
            emit([n])
        self.assertEqual(queued(), EVENTS_MAX)
        # at the limit: still connected, still subscribed
        self.assertFalse(hung_up(stalled.sock), "dropped at exactly the limit")
        self.assertTrue(w.daemon.running())

        # one byte over: the next (shortest) event disconnects it
        in_kernel = sent - EVENTS_MAX
        emit([1])
        self.assertTrue(hung_up(stalled.sock), f"still connected with {queued()} bytes queued")
        data = stalled.buf
        stalled.sock.settimeout(harness.TIMEOUT)
        while chunk := stalled.sock.recv(1 << 20):
            data += chunk
        # what the kernel held, no more; whole events, and maybe the start of
        # one where the daemon's last partial write stopped; no error line
        self.assertEqual(len(data), in_kernel)
        *lines, fragment = data.split(b"\n")
        for line in lines:
            ev = json.loads(line)
            self.assertEqual((ev["event"], ev["state"]), ("vmm", "registered"), ev)
        self.assertLess(len(fragment), base + 40, fragment)

        # everyone else is served on, and the daemon still emits
        emit([5])
        self.assertIs(probe.call("status")["ok"], True)
        self.assertIn("not reading", w.daemon.stderr_text())

    # -- VMM messages --------------------------------------------------------------

    def test_vmm_message_size(self):
        w = self.world
        w.start_daemon()
        with w.api() as probe:
            self.settle(probe)
            before = harness.fd_count(w.daemon.pid)
        cases = {
            "HELLO + 1": hello_msg(1, "vm-x") + b"\0",
            "token message + 1": token_msg(PRESERVE_FD, 1, 1) + b"\0",
            "header + 1": struct.pack("<II", PREPARE_DONE, 1) + b"\0",
            "LU_VMM_MSG_MAX": hello_msg(1, "vm-x") + b"\0" * (VMM_MSG_MAX - 64),
            "LU_VMM_MSG_MAX + 1": hello_msg(1, "vm-x") + b"\0" * (VMM_MSG_MAX - 63),
            "64 KiB": hello_msg(1, "vm-x") + b"\0" * (65536 - 64),
        }
        for what, data in cases.items():
            with self.subTest(what):
                v = self.raw()
                v.send(data)
                v.expect_hangup()
        # after a registration, too
        v = self.raw()
        self.assertEqual(v.hello("vm-y"), 0)
        v.send(struct.pack("<II", PREPARE_DONE, 2) + b"\0" * (VMM_MSG_MAX - 8))
        v.expect_hangup()
        # exactly the size: served
        z = RawVmm(w.vmm_socket)
        self.assertEqual(z.hello("vm-z"), 0)
        self.assertEqual(sorted(w.vmm_list()), ["vm-z"])
        z.close()
        with w.api() as probe:
            self.settle(probe)
            after = harness.fd_count(w.daemon.pid)
        self.assertEqual(after, before, "fds left open by refused messages")
        self.assertEqual(w.vmm_list(), {})
        self.assertTrue(w.daemon.running())

    def test_fds_on_a_message(self):
        w = self.world
        w.start_daemon()
        fds = [os.memfd_create(f"f{i}") for i in range(SCM_MAX_FD)]
        for fd in fds:
            self.addCleanup(os.close, fd)
        with w.api() as probe:
            self.settle(probe)
            before = fd_links(w.daemon.pid)

        v = self.raw()
        v.send(hello_msg(1, "vm-h"), [fds[0]])  # HELLO carries none
        v.expect_hangup()
        v.close()

        v = RawVmm(w.vmm_socket)
        self.assertEqual(v.hello("vm-p"), 0)
        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare",
                    "params": {"kernel": w.make_kernel_image()}})
            self.assertEqual(v.recv()[0], PREPARE)
            v.seq += 1
            v.send(token_msg(PRESERVE_FD, v.seq, 1), fds[:2])  # exactly one, not two
            v.expect_hangup()
            v.close()
            rep = c.read_reply()
            self.assertEqual(rep["error"]["code"], "vmm-failed", rep)

        for n in (SCM_MAX_FD, 1):
            v = RawVmm(w.vmm_socket)
            self.assertEqual(v.hello(f"vm-{n}"), 0)
            v.send(token_msg(DECLARE_TOKEN, 2, 1), fds[:n])  # DECLARE_TOKEN carries none
            v.expect_hangup()
            v.close()

        with w.api() as probe:
            self.settle(probe)
            after = fd_links(w.daemon.pid)
        self.assertEqual(w.vmm_list(), {})
        # the prepare's deadline left sd-event's timerfd behind, nothing else
        grown = collections.Counter(map(fd_kind, after.values()))
        grown.subtract(map(fd_kind, before.values()))
        extra = sorted(grown.elements())
        self.assertIn(extra, ([], ["anon_inode:[timerfd]"]),
                      f"fds received on refused messages stay open: {before} -> {after}")
        self.assertEqual(len(after), len(before) + len(extra))
        self.assertIdle()
        self.assertNothingPending()

    def test_declare_token_limit(self):
        w = self.world
        w.start_daemon("--max-fds-per-vmm", "3")
        v = self.raw()
        self.assertEqual(v.hello("vm-self"), 0)
        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare",
                    "params": {"kernel": w.make_kernel_image()}})
            kind, msg, _ = v.recv()
            self.assertEqual(kind, PREPARE)
            self.assertEqual(struct.unpack_from("<I", msg, 44)[0], 3)
            v.seq += 1
            err, session = v.request(token_msg(GET_SESSION, v.seq, 0)[:8])
            self.assertEqual((err, len(session)), (0, 1))
            self.addCleanup(os.close, session[0])

            fd = os.memfd_create("ram")
            self.addCleanup(os.close, fd)
            os.ftruncate(fd, 4096)
            results = []
            v.seq += 1
            results.append(v.request(token_msg(PRESERVE_FD, v.seq, 1), [fd])[0])
            for token in (2, 3, 4):
                v.seq += 1
                results.append(v.request(token_msg(DECLARE_TOKEN, v.seq, token))[0])
            # at the limit (two declared plus one sent): fine; past it: E2BIG
            self.assertEqual(results, [0, 0, 0, -errno.E2BIG])
            fd2 = os.memfd_create("ram2")
            self.addCleanup(os.close, fd2)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PRESERVE_FD, v.seq, 5), [fd2])[0], -errno.E2BIG)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PREPARE_DONE, v.seq, 0)[:8])[0], 0)
            self.assertTrue(c.read_reply()["ok"])
        self.assertEqual(w.vmm_list()["vm-self"]["fds"], 3)
        self.assertCtlOk(w.ctl("abort"))

    def test_max_fds_option_bounds(self):
        w = self.world
        for value in ("0", str(FDS_MAX + 1), "-1", "1000000"):
            with self.subTest(value):
                d = w.start_daemon("--max-fds-per-vmm", value, wait=False)
                d.allowed_exit = set(range(1, 256))
                rc = d.wait()
                self.assertNotEqual(rc, 0, value)
                self.assertGreater(rc, 0, value)
                self.assertFalse(os.path.exists(w.control_socket), value)
        w.start_daemon("--max-fds-per-vmm", str(FDS_MAX))
        v = self.raw()
        self.assertEqual(v.hello("vm-max"), 0)
        with w.api() as c:
            c.send({"api": 1, "id": 1, "method": "prepare",
                    "params": {"kernel": w.make_kernel_image()}})
            kind, msg, _ = v.recv()
            self.assertEqual(kind, PREPARE)
            self.assertEqual(struct.unpack_from("<I", msg, 44)[0], FDS_MAX)
            v.seq += 1
            self.assertEqual(v.request(token_msg(PREPARE_DONE, v.seq, 0)[:8])[0], 0)
            self.assertTrue(c.read_reply()["ok"])
        self.assertCtlOk(w.ctl("abort"))


if __name__ == "__main__":
    harness.main()
