# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for the bits of systemd (PID 1) that liveupdated uses.

Python 3.11, standard library only; used by test_systemd.py with the
harness's World. It plays the service manager of units/liveupdated.service
and its two .socket units, no more:

* **Socket activation.** It binds the two listening sockets itself, the way
  liveupdated-vmm.socket (SOCK_SEQPACKET, FileDescriptorName=vmm) and
  liveupdated-control.socket (SOCK_STREAM, FileDescriptorName=control) do,
  and starts the daemon with them at fd 3 and 4, followed by every fd in its
  fd store, with LISTEN_FDS, LISTEN_FDNAMES=vmm:control:<stored names...>
  and LISTEN_PID. LISTEN_PID must be the daemon's own pid, which is known
  only after the fork, so a tiny exec wrapper (WRAPPER, run by python3)
  moves the fds to 3, 4, ... , sets LISTEN_PID (and WATCHDOG_PID) to its
  own pid and execve()s the daemon: the pid does not change across execve.

* **The notify socket.** NOTIFY_SOCKET names an AF_UNIX SOCK_DGRAM socket.
  A reader thread receives every datagram (and the fds it carries with
  SCM_RIGHTS), parses it the way systemd does (newline-separated
  KEY=VALUE assignments) and records it as a Notification: READY=1,
  STATUS=, STOPPING=1, WATCHDOG=1, FDSTORE=1 with FDNAME=, FDSTOREREMOVE=1
  with FDNAME=, anything else verbatim. SO_PASSCRED is deliberately not set:
  nothing here depends on credentials (the real systemd uses them only to
  attribute messages to a pid; only one daemon runs at a time here, so
  order attributes them), and the daemon must not need them either. Any
  ancillary data other than SCM_RIGHTS, or a truncated message, is a
  protocol problem.

* **The fd store** (FileDescriptorStoreMax=). FDSTORE=1 keeps the fds it
  came with under FDNAME (default "stored", as in systemd), dropping a
  duplicate of a file already stored, as systemd does; FDSTOREREMOVE=1
  closes and forgets every fd of that name, as systemd does. fds sent
  without FDSTORE=1 are closed. The store outlives the daemon (that is its
  point) and is handed to the next start() under the same names. It does
  not outlive a reboot: after a kexec a new FakeSystemd plays the new PID 1.

* **The watchdog.** start(watchdog_usec=N) sets WATCHDOG_USEC (and
  WATCHDOG_PID); WATCHDOG=1 pings are recorded like any message. Nobody
  kills the daemon for a missed ping: the test decides.

Everything that waits has a deadline (harness.TIMEOUT by default) and is
woken by the event it waits for: the reader thread notifies a condition
variable, nothing sleeps for a fixed time. sync() is a barrier: it sends a
datagram of its own to the notify socket and waits until the reader has
seen it; since a datagram socket's queue is FIFO, every message a process
sent before sync() was called (say, a daemon that has exited) has then been
processed.

Protocol problems (a bad fd name, fds without FDSTORE=1, FDSTORE=1 without
fds, FDSTOREREMOVE=1 without FDNAME, ...) are collected in .problems; the
test decides whether they fail it.
"""

from __future__ import annotations

import array
import os
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import harness

#: The exec wrapper: argv is N FD... -- DAEMON ARGS...; moves the N fds to
#: 3, 4, ..., sets LISTEN_PID (and WATCHDOG_PID when WATCHDOG_USEC is set)
#: to its own pid, and execve()s the daemon, keeping the pid.
WRAPPER = r"""
import fcntl, os, sys
n = int(sys.argv[1])
src = [int(x) for x in sys.argv[2:2 + n]]
assert sys.argv[2 + n] == "--", sys.argv
argv = sys.argv[3 + n:]
# first out of the way (above the target range), then into place
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + n) for fd in src]
for fd in src:
    if fd >= 3 + n:
        os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
env = dict(os.environ)
env["LISTEN_PID"] = str(os.getpid())
if "WATCHDOG_USEC" in env:
    env["WATCHDOG_PID"] = str(os.getpid())
os.execve(argv[0], argv, env)
"""

#: What the daemon's socket units call their sockets (units/*.socket).
VMM_FDNAME = "vmm"
CONTROL_FDNAME = "control"

#: A datagram the fake sends itself: the barrier of sync(), and the stop.
_BARRIER_KEY = "X-FAKE-SYSTEMD-BARRIER"
_STOP_KEY = "X-FAKE-SYSTEMD-STOP"

#: systemd's limits (fdname_is_valid(), NOTIFY_FD_MAX).
FDNAME_MAX = 255
NOTIFY_FD_MAX = 768
NOTIFY_BUFFER_MAX = 64 * 1024


def fdname_is_valid(name: str) -> bool:
    """systemd's fdname_is_valid(): 1..255 printable ASCII characters, no ':'."""
    return (0 < len(name) <= FDNAME_MAX
            and all(0x20 <= ord(c) < 0x7f and c != ":" for c in name))


@dataclass
class Notification:
    """One datagram received on the notify socket."""
    index: int                     #: 0, 1, 2, ... in order of arrival
    time: float                    #: time.monotonic() when it was read
    text: str                      #: the datagram as sent
    fields: dict[str, str]         #: KEY=VALUE assignments (the last one wins)
    n_fds: int = 0                 #: fds that came with it (SCM_RIGHTS)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def is_(self, key: str, value: str = "1") -> bool:
        """Whether it says KEY=value (READY=1, FDSTORE=1, ...)."""
        return self.fields.get(key) == value

    def __str__(self) -> str:
        fds = f" +{self.n_fds} fd(s)" if self.n_fds else ""
        return f"#{self.index} {self.text.strip()!r}{fds}"


@dataclass
class StoredFd:
    name: str
    fd: int
    index: int  #: the Notification that brought it


@dataclass
class FakeSystemd:
    """The service manager of one liveupdated service; see the module doc.

    world: a harness.World (paths, logs, the daemon's environment).
    vmm_path, control_path: where to bind the activated sockets; None:
    no socket activation (the daemon binds its own in its runtime dir).
    """

    world: harness.World
    vmm_path: str | None = None
    control_path: str | None = None
    name: str = "systemd"

    messages: list[Notification] = field(default_factory=list)
    store: list[StoredFd] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: every daemon started, and where its messages begin
    starts: list[tuple[harness.Daemon, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False
        self._barriers = 0
        self._seen_barrier = 0
        self._stopped = False
        self.notify_path = self.world.path(f"{self.name}-notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.notify_path)
        # generous receive buffer: a burst of FDSTORE=1 must not be lost
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.listeners: dict[str, socket.socket] = {}
        if self.vmm_path is not None:
            self.listeners[VMM_FDNAME] = self._listen(self.vmm_path, socket.SOCK_SEQPACKET)
        if self.control_path is not None:
            self.listeners[CONTROL_FDNAME] = self._listen(self.control_path, socket.SOCK_STREAM)
        self._log = open(os.path.join(self.world.logdir, f"{self.name}.notify.log"), "w")
        self._thread = threading.Thread(target=self._reader, name=f"{self.name}-notify",
                                        daemon=True)
        self._thread.start()

    # -- sockets ---------------------------------------------------------------

    @staticmethod
    def _listen(path: str, kind: int) -> socket.socket:
        """Bind and listen like a .socket unit (SocketMode=0660)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
        s.bind(path)
        os.chmod(path, 0o660)
        s.listen(socket.SOMAXCONN)
        return s

    # -- the notify socket ---------------------------------------------------

    def _reader(self) -> None:
        fd_size = array.array("i").itemsize
        while True:
            try:
                data, anc, flags, _ = self.sock.recvmsg(
                    NOTIFY_BUFFER_MAX, socket.CMSG_SPACE(NOTIFY_FD_MAX * fd_size),
                    socket.MSG_CMSG_CLOEXEC)
            except OSError as e:
                with self._cond:
                    if not self._closed:
                        self.problems.append(f"recvmsg on the notify socket failed: {e}")
                    self._stopped = True
                    self._cond.notify_all()
                return
            fds: list[int] = []
            others = []
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(cdata[:len(cdata) - len(cdata) % fd_size])
                    fds.extend(a)
                else:
                    others.append((level, kind))
            text = data.decode("utf-8", "replace")
            with self._cond:
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    self.problems.append(f"truncated notify message (flags {flags:#x}): {text!r}")
                if others:
                    self.problems.append(f"unexpected ancillary data {others} with {text!r}")
                if _STOP_KEY in text:
                    for fd in fds:
                        os.close(fd)
                    self._stopped = True
                    self._cond.notify_all()
                    return
                if _BARRIER_KEY in text:
                    for fd in fds:
                        os.close(fd)
                    self._seen_barrier = int(text.split("=", 1)[1])
                    self._cond.notify_all()
                    continue
                self._handle(text, fds)
                self._cond.notify_all()

    def _handle(self, text: str, fds: list[int]) -> None:
        """One message, under the lock; takes fds over."""
        fields: dict[str, str] = {}
        for line in text.split("\n"):
            if not line:
                continue
            key, eq, value = line.partition("=")
            if not eq or not key:
                self.problems.append(f"notify line without KEY=: {line!r} in {text!r}")
                continue
            fields[key] = value
        n = Notification(len(self.messages), time.monotonic(), text, fields, len(fds))
        self.messages.append(n)
        self._log.write(f"{n.time:.3f} {n}\n")
        self._log.flush()

        if n.is_("FDSTORE"):
            name = fields.get("FDNAME", "stored")
            if not fdname_is_valid(name):
                self.problems.append(f"FDSTORE=1 with an invalid FDNAME {name!r}: {n}")
            if not fds:
                self.problems.append(f"FDSTORE=1 without fds: {n}")
            for fd in fds:
                if self._already_stored(fd):
                    os.close(fd)  # systemd drops a second copy of the same file
                else:
                    self.store.append(StoredFd(name, fd, n.index))
            return
        if fds:
            self.problems.append(f"fds sent without FDSTORE=1 (closed, as systemd does): {n}")
            for fd in fds:
                os.close(fd)
        if n.is_("FDSTOREREMOVE"):
            name = fields.get("FDNAME")
            if name is None:
                self.problems.append(f"FDSTOREREMOVE=1 without FDNAME: {n}")
                return
            keep = []
            for s in self.store:
                if s.name == name:
                    os.close(s.fd)
                else:
                    keep.append(s)
            self.store = keep

    def _already_stored(self, fd: int) -> bool:
        st = os.fstat(fd)
        for s in self.store:
            o = os.fstat(s.fd)
            if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino) and \
                    stat.S_IFMT(o.st_mode) == stat.S_IFMT(st.st_mode):
                return True
        return False

    def _send_self(self, text: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(text.encode(), self.notify_path)

    def sync(self, timeout: float | None = None) -> None:
        """Wait until every message sent before this call has been handled."""
        with self._cond:
            self._barriers += 1
            want = self._barriers
        self._send_self(f"{_BARRIER_KEY}={want}")
        end = harness.deadline(timeout)
        with self._cond:
            while self._seen_barrier < want:
                if self._stopped:
                    raise harness.HarnessError(f"{self.name}: the notify reader stopped")
                left = harness.remaining(end)
                if left <= 0:
                    raise harness.HarnessError(f"{self.name}: sync barrier not seen in time")
                self._cond.wait(left)

    # -- queries -----------------------------------------------------------------

    def mark(self) -> int:
        """The index the next message will get (for since=)."""
        with self._cond:
            return len(self.messages)

    def find(self, pred: Callable[[Notification], bool], since: int = 0) -> list[Notification]:
        with self._cond:
            return [n for n in self.messages[since:] if pred(n)]

    def find_key(self, key: str, value: str | None = "1", since: int = 0) -> list[Notification]:
        """Messages that set key (to value; None: to anything)."""
        return self.find(lambda n: key in n.fields and (value is None or n.fields[key] == value),
                         since)

    def wait_for(self, pred: Callable[[Notification], bool], since: int = 0, count: int = 1,
                 timeout: float | None = None, what: str = "a notification") -> Notification:
        """Wait until count messages at or after since match pred; return the
        count-th. Fails early when the daemon started last has exited."""
        end = harness.deadline(timeout)
        with self._cond:
            while True:
                found = [n for n in self.messages[since:] if pred(n)]
                if len(found) >= count:
                    return found[count - 1]
                d = self.starts[-1][0] if self.starts else None
                left = harness.remaining(end)
                if left <= 0 or self._stopped:
                    raise harness.HarnessError(
                        f"{self.name}: no {what} (x{count}) within the deadline; "
                        f"messages: {self.summary_unlocked(since)}")
                if d is not None and not d.running():
                    # the daemon is gone: whatever it sent is in the queue
                    self._cond.release()
                    try:
                        self.sync(left)
                    finally:
                        self._cond.acquire()
                    found = [n for n in self.messages[since:] if pred(n)]
                    if len(found) >= count:
                        return found[count - 1]
                    raise harness.HarnessError(
                        f"{self.name}: {d.name} exited ({d.poll()}) without sending {what}; "
                        f"messages: {self.summary_unlocked(since)}")
                # a dead daemon wakes nobody: look again at least every 100 ms
                self._cond.wait(min(left, 0.1))

    def wait_key(self, key: str, value: str | None = "1", since: int = 0, count: int = 1,
                 timeout: float | None = None) -> Notification:
        return self.wait_for(
            lambda n: key in n.fields and (value is None or n.fields[key] == value),
            since=since, count=count, timeout=timeout,
            what=f"{key}={value if value is not None else '*'}")

    def stored_names(self) -> list[str]:
        with self._cond:
            return [s.name for s in self.store]

    def summary_unlocked(self, since: int = 0) -> str:
        return "[" + ", ".join(str(n) for n in self.messages[since:]) + "]"

    def summary(self, since: int = 0) -> str:
        with self._cond:
            return self.summary_unlocked(since)

    # -- the service ---------------------------------------------------------------

    def start(self, *args: str, watchdog_usec: int | None = None,
              extra_env: dict[str, str] | None = None) -> harness.Daemon:
        """Start liveupdated as the service (World.start_daemon, without
        waiting for its control socket): activated sockets first, then the
        fd store, then NOTIFY_SOCKET and (watchdog_usec) WATCHDOG_USEC.
        Returns at once; wait for READY=1 with wait_ready()."""
        with self._cond:
            names = list(self.listeners) + [s.name for s in self.store]
            fds = [s.fileno() for s in self.listeners.values()] + [s.fd for s in self.store]
            since = len(self.messages)
        env_extra = {"NOTIFY_SOCKET": self.notify_path}
        if fds:
            env_extra["LISTEN_FDS"] = str(len(fds))
            env_extra["LISTEN_FDNAMES"] = ":".join(names)
        if watchdog_usec is not None:
            env_extra["WATCHDOG_USEC"] = str(watchdog_usec)
        env_extra.update(extra_env or {})
        env = self.world.c_env(env_extra)
        prefix = [sys.executable, "-I", "-S", "-c", WRAPPER, str(len(fds)),
                  *(str(fd) for fd in fds), "--"]
        d = self.world.start_daemon(*args, wait=False, env=env, prefix=prefix, pass_fds=fds)
        with self._cond:
            self.starts.append((d, since))
        return d

    def since_start(self) -> int:
        """Where the messages of the daemon started last begin."""
        return self.starts[-1][1]

    def wait_ready(self, timeout: float | None = None) -> Notification:
        """READY=1 from the daemon started last."""
        return self.wait_key("READY", since=self.since_start(), timeout=timeout)

    def close(self) -> None:
        """Stop the reader, close the store, the sockets; unlink the paths."""
        if self._closed:
            return
        if not self._stopped:
            try:
                self._send_self(f"{_STOP_KEY}=1")
            except OSError:
                pass
            self._thread.join(harness.TIMEOUT)
        with self._cond:
            self._closed = True
            for s in self.store:
                os.close(s.fd)
            self.store = []
        self.sock.close()
        for s in self.listeners.values():
            s.close()
        for path in [self.notify_path, self.vmm_path, self.control_path]:
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self._log.close()

    def __enter__(self) -> "FakeSystemd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def paths(world: harness.World, subdir: str = "activated") -> tuple[str, str]:
    """Socket paths outside the daemon's runtime dir, for socket activation."""
    d = world.path(subdir)
    return os.path.join(d, "vmm.sock"), os.path.join(d, "control.sock")


def use_sockets(world: harness.World, vmm_path: str, control_path: str) -> None:
    """Point the World's VMMs, liveupdatectl and API clients at these sockets."""
    world.vmm_socket = vmm_path
    world.control_socket = control_path


__all__ = ["FakeSystemd", "Notification", "WRAPPER", "fdname_is_valid", "paths",
                          "use_sockets"]


class ServiceManagerTestCase(harness.WorldTestCase):
    """A WorldTestCase whose daemons run under fake service managers
    (start_manager), which outlive them and whose notify protocol problems
    fail the test."""

    def setUp(self) -> None:
        self.fakes: list[FakeSystemd] = []
        # registered before the World's cleanup, so it runs after it: the
        # service manager outlives the daemons it started
        self.addCleanup(self._close_fakes)
        super().setUp()

    def _close_fakes(self) -> None:
        problems = []
        for fs in self.fakes:
            problems += [f"{fs.name}: {p}" for p in fs.problems]
            fs.close()
        if problems:
            self.fail("notify protocol problems:\n  " + "\n  ".join(problems))

    def start_manager(self, name: str = "systemd", activate: bool = True) -> FakeSystemd:
        """A fake service manager; with activate, it binds the two sockets
        outside the daemon's runtime dir and the World uses them."""
        w = self.world
        vmm_path = control_path = None
        if activate:
            vmm_path, control_path = paths(w)
            use_sockets(w, vmm_path, control_path)
        fs = FakeSystemd(w, vmm_path, control_path, name=name)
        self.fakes.append(fs)
        return fs

    def start_service(self, fs: FakeSystemd, *args: str, **kw) -> harness.Daemon:
        """Start the daemon under fs and wait for READY=1 (and nothing else)."""
        d = fs.start(*args, **kw)
        fs.wait_ready()
        return d
