# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small harness for liveupdated's integration tests.

Python 3.11, standard library only. Every test gets a World: a fresh
temporary directory with its own fake kernel (tests/fakekernel), its own
liveupdated, reference VMMs (tests/refvmm) and liveupdatectl runs, all
talking through sockets inside that directory. Nothing touches the host's
/dev/liveupdate, /run/liveupdated or kexec state.

The binaries come from the environment, as tests/integration/meson.build
sets it:

    LIVEUPDATED      the daemon
    LIVEUPDATECTL    the CLI
    REFVMM           the reference VMM (liveupdate-refvmm)
    FAKE_KERNEL      the fake kernel server
    FAKELUO_PRELOAD  the LD_PRELOAD shim that routes LUO/kexec to it
    ASAN_OPTIONS, UBSAN_OPTIONS   passed on to every C process

Typical use (see the test_*.py files)::

    class TestX(harness.WorldTestCase):
        def test_it(self):
            w = self.world                      # fake kernel already running
            d = w.start_daemon()                # waits until status answers
            v = w.start_vmm("vm1", mem_mib=16)  # waits until it is registered
            r = w.ctl("prepare", w.make_kernel_image())
            self.assertEqual(r.rc, 0, r)
            ...

Every wait has a deadline and is woken by the event it waits for (a VMM's
JSON line, a daemon event on a subscription, a process exit); nothing
sleeps for a fixed time. At the end of a test every process is stopped,
every C process's stderr is searched for sanitizer reports, the daemon's
exit status is checked, and on failure the logs of every process are
printed before the directory is removed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

# ---------------------------------------------------------------------------
# Configuration

#: Default deadline of one wait, in seconds. Generous: ASan on 2 cores.
TIMEOUT = float(os.environ.get("LIVEUPDATE_TEST_TIMEOUT", "20"))

#: What a sanitizer writes when it finds something.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: AddressSanitizer",
    "ERROR: UndefinedBehaviorSanitizer",
)

#: The handover clock (src/util/handover-clock.h) is the x86 TSC; elsewhere
#: every TSC figure in reports and refvmm events is null.
HAVE_TSC = platform.machine() in ("x86_64", "AMD64")

#: The refvmm's exit codes (tests/refvmm/refvmm.c).
VMM_EXIT_OK, VMM_EXIT_ERROR, VMM_EXIT_USAGE, VMM_EXIT_CORRUPT, VMM_EXIT_HANGUP = 0, 1, 2, 3, 4

#: The reference VMMs' writers nap 1 ms per turn (32 KiB a file): they still
#: write all the time, but a dozen sanitized VMMs no longer take both cores
#: from the daemon under test and turn its deadlines into a lottery.
VMM_NAP_US = 1000

#: liveupdatectl's exit codes (cli/liveupdatectl.c).
CTL_OK, CTL_FAILED, CTL_USAGE, CTL_UNREACHABLE, CTL_PERMISSION = 0, 1, 2, 3, 4

#: Offsets of the bzImage header that the fake kernel and the daemon read:
#: the magic, and where (less 0x200) the version string is.
BZ_MAGIC_OFFSET = 0x202
BZ_VERSION_PTR_OFFSET = 0x20e
BZ_VERSION_AT = 0x400
#: The release test images name, and the config a kernel that can receive a
#: live update has (the daemon looks for config-RELEASE beside the image).
TEST_RELEASE = "7.3.0-liveupdated-test"
LUO_CONFIG = "CONFIG_KEXEC_HANDOVER=y\nCONFIG_LIVEUPDATE=y\nCONFIG_LIVEUPDATE_MEMFD=y\n"

# The VMM protocol (include/liveupdate/vmm-protocol.h), for raw tests.
LU_VMM_PROTOCOL_VERSION = 1
LU_VMM_MSG_HELLO = 1
LU_VMM_MSG_REPLY = 64
LU_VM_ID_MAX = 40


class HarnessError(AssertionError):
    """Something the harness waited for did not happen (a test failure)."""


def _binary(var: str) -> str:
    path = os.environ.get(var)
    if not path:
        raise unittest.SkipTest(f"${var} is not set: run through 'meson test --suite integration'")
    if not os.access(path, os.X_OK) and not path.endswith(".so"):
        raise HarnessError(f"${var}={path} is not an executable")
    return path


def binaries() -> dict[str, str]:
    """The paths of the programs under test, from the environment."""
    return {
        "daemon": _binary("LIVEUPDATED"),
        "ctl": _binary("LIVEUPDATECTL"),
        "refvmm": _binary("REFVMM"),
        "fake_kernel": _binary("FAKE_KERNEL"),
        "preload": _binary("FAKELUO_PRELOAD"),
    }


def deadline(timeout: float | None) -> float:
    return time.monotonic() + (TIMEOUT if timeout is None else timeout)


def remaining(end: float) -> float:
    return max(0.0, end - time.monotonic())


def sanitizer_report(text: str) -> str | None:
    """The first lines of a sanitizer report found in text, or None."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            start = text.rfind("\n", 0, i) + 1
            return text[start:start + 4000]
    return None


def make_kernel_image(path: str, magic: bool = True, size: int = 4096,
                      release: str | None = TEST_RELEASE,
                      config: str | None = LUO_CONFIG) -> str:
    """Write a file the fake kernel accepts as a bzImage ("HdrS" at 0x202,
    at least 1 KiB) naming release in its header, with config-RELEASE
    beside it holding config (None: no such file); with magic=False, one
    it refuses (ENOEXEC)."""
    data = bytearray(size)
    if magic:
        data[BZ_MAGIC_OFFSET:BZ_MAGIC_OFFSET + 4] = b"HdrS"
        if release is not None:
            data[BZ_VERSION_PTR_OFFSET:BZ_VERSION_PTR_OFFSET + 2] = \
                (BZ_VERSION_AT - 0x200).to_bytes(2, "little")
            version = f"{release} (liveupdated@tests) #1\0".encode()
            data[BZ_VERSION_AT:BZ_VERSION_AT + len(version)] = version
            if config is not None:
                with open(os.path.join(os.path.dirname(path), f"config-{release}"), "w") as f:
                    f.write(config)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------
# Processes

class Process:
    """A child process whose stdout and stderr go to files in the World.

    stdout can instead be read line by line by a thread (see Vmm)."""

    def __init__(self, world: "World", name: str, argv: list[str], env: dict[str, str],
                 stdout_pipe: bool = False, **popen_kw: Any):
        self.world = world
        self.name = name
        self.argv = argv
        self.stderr_path = os.path.join(world.logdir, f"{name}.stderr")
        self.stdout_path = os.path.join(world.logdir, f"{name}.stdout")
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        #: exit statuses that are fine for this process (None: still running is fine)
        self.allowed_exit: set[int] = {0}
        #: set when the harness killed it on purpose
        self.killed_by_harness = False
        self.popen = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._stdout,
            stderr=self._stderr, close_fds=True, **popen_kw)
        world.processes.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit, return the status (negative: killed by that signal)."""
        try:
            return self.popen.wait(timeout=TIMEOUT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.name} (pid {self.pid}) did not exit within "
                               f"{TIMEOUT if timeout is None else timeout} s") from None

    def signal(self, sig: int) -> None:
        if self.running():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self) -> int:
        """SIGKILL and reap."""
        self.killed_by_harness = True
        self.allowed_exit.add(-signal.SIGKILL)
        self.signal(signal.SIGKILL)
        return self.wait()

    def terminate(self, timeout: float | None = None) -> int:
        """SIGTERM, wait; SIGKILL if it does not go. Returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=TIMEOUT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise HarnessError(f"{self.name} (pid {self.pid}) ignored SIGTERM") from None

    def stderr_text(self) -> str:
        self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_text(self) -> str:
        self._stdout.flush()
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close_files(self) -> None:
        for f in (self._stderr, self._stdout):
            try:
                f.close()
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<{self.name} pid {self.pid} rc {self.popen.returncode}>"


class Daemon(Process):
    """A liveupdated process."""

    def __init__(self, world: "World", name: str, args: list[str],
                 env: dict[str, str] | None = None, prefix: Iterable[str] = (),
                 pass_fds: Iterable[int] = ()):
        """env: the whole environment (default world.c_env()); prefix: argv
        words before the daemon's own (an exec wrapper); pass_fds: fds the
        child inherits (subprocess.Popen's pass_fds)."""
        self.args = list(args)
        argv = [*prefix, world.bin["daemon"], f"--runtime-dir={world.runtime_dir}",
                f"--state-dir={world.state_dir}", "--log-level=debug", *args]
        super().__init__(world, name, argv, world.c_env() if env is None else env,
                         pass_fds=tuple(pass_fds))
        #: set by simulate_reboot(): the shim SIGKILLed it inside reboot()
        self.rebooted = False


class Vmm(Process):
    """A liveupdate-refvmm process and the JSON events it printed.

    A thread reads stdout; every line is parsed and appended to events.
    wait_event() waits on a condition variable, never sleeps."""

    def __init__(self, world: "World", name: str, vm_id: str, argv: list[str]):
        self.vm_id = vm_id
        self.events: list[dict] = []
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        super().__init__(world, name, argv, world.c_env(), stdout_pipe=True)
        self._thread = threading.Thread(target=self._reader, name=f"reader-{name}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self._stdout.write(raw)
            self._stdout.flush()
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict) or "event" not in ev:
                    raise ValueError("not an event object")
            except ValueError:
                with self._cond:
                    self.bad_lines.append(line)
                    self._cond.notify_all()
                continue
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def find(self, name: str, pred: Callable[[dict], bool] | None = None) -> list[dict]:
        """Every event called name (and matching pred) so far."""
        with self._cond:
            return [e for e in self.events if e["event"] == name and (pred is None or pred(e))]

    def names(self) -> list[str]:
        with self._cond:
            return [e["event"] for e in self.events]

    def wait_event(self, name: str, timeout: float | None = None, count: int = 1,
                   pred: Callable[[dict], bool] | None = None,
                   fail_on_error: bool = True) -> dict:
        """Wait until at least count events called name (matching pred) were
        printed; return the count-th. Fails early if the VMM exited without
        printing it, or (fail_on_error) if it printed an 'error' event: an
        aborted update may legitimately race a VMM's preserve requests."""
        end = deadline(timeout)
        with self._cond:
            while True:
                found = [e for e in self.events
                         if e["event"] == name and (pred is None or pred(e))]
                if len(found) >= count:
                    return found[count - 1]
                errors = [e for e in self.events if e["event"] == "error"]
                if errors and fail_on_error and name != "error":
                    raise HarnessError(f"VMM {self.vm_id} reported an error while waiting "
                                       f"for '{name}': {errors[0]}; events: {self.names_unlocked()}")
                if self._eof:
                    rc = self.popen.wait(timeout=TIMEOUT)
                    raise HarnessError(f"VMM {self.vm_id} exited ({rc}) without printing "
                                       f"'{name}'; events: {self.names_unlocked()}")
                left = remaining(end)
                if left <= 0:
                    raise HarnessError(f"VMM {self.vm_id}: no '{name}' event within the "
                                       f"deadline; events: {self.names_unlocked()}")
                self._cond.wait(left)

    def names_unlocked(self) -> list[str]:
        return [e["event"] for e in self.events]

    def verify(self, timeout: float | None = None) -> dict:
        """SIGUSR1: the refvmm parks its writer, checks every byte of its
        RAM against the model and prints 'verified'. Returns that event."""
        n = len(self.find("verified"))
        self.signal(signal.SIGUSR1)
        return self.wait_event("verified", timeout, count=n + 1)

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait until the process exits and its output is read; return its status."""
        rc = self.wait(timeout)
        self._thread.join(TIMEOUT)
        return rc

    def stop(self) -> int:
        """SIGTERM: the refvmm prints 'exit' and returns 0."""
        rc = self.terminate()
        self._thread.join(TIMEOUT)
        return rc


@dataclass
class CtlResult:
    """What a liveupdatectl run printed and returned."""
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    objects: list[Any] = field(default_factory=list)

    @property
    def json(self) -> Any:
        """The last JSON object printed on stdout (the result, or the error)."""
        if not self.objects:
            raise HarnessError(f"liveupdatectl printed no JSON: {self}")
        return self.objects[-1]

    def __str__(self) -> str:
        return (f"liveupdatectl {' '.join(self.argv[1:])}: rc {self.rc}\n"
                f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}")


# ---------------------------------------------------------------------------
# The raw JSON API

class ApiClient:
    """A raw connection to the control socket: send lines, read lines."""

    def __init__(self, path: str, timeout: float | None = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT if timeout is None else timeout)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: Any) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def request(self, method: str, params: dict | None = None, **extra: Any) -> Any:
        """Send one request; returns the id used."""
        req: dict[str, Any] = {"api": 1, "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            req["params"] = params
        req.update(extra)
        self.send(req)
        return req["id"]

    def read_line(self, timeout: float | None = None) -> bytes | None:
        """One line without its newline; None at EOF. Raises on timeout."""
        end = deadline(timeout)
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = remaining(end)
            if left <= 0:
                raise HarnessError(f"no line from the daemon within the deadline "
                                   f"(have {self.buf[:200]!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read(self, timeout: float | None = None) -> dict | None:
        """One message (reply or event), parsed; None at EOF."""
        line = self.read_line(timeout)
        if line is None:
            return None
        try:
            return json.loads(line)
        except ValueError:
            raise HarnessError(f"the daemon sent a line that is not JSON: {line[:300]!r}") from None

    def read_reply(self, timeout: float | None = None) -> dict:
        """The next reply (events are skipped)."""
        end = deadline(timeout)
        while True:
            msg = self.read(remaining(end))
            if msg is None:
                raise HarnessError("the daemon closed the connection before replying")
            if "event" not in msg:
                return msg

    def call(self, method: str, params: dict | None = None, timeout: float | None = None,
             **extra: Any) -> dict:
        """Request and reply; the reply is returned whether ok or not."""
        rid = self.request(method, params, **extra)
        reply = self.read_reply(timeout)
        if reply.get("id") != rid:
            raise HarnessError(f"reply to id {rid} carries id {reply.get('id')}: {reply}")
        return reply

    def wait_eof(self, timeout: float | None = None) -> list[dict]:
        """Read until the daemon closes; return what came before."""
        end = deadline(timeout)
        msgs = []
        while True:
            m = self.read(remaining(end))
            if m is None:
                return msgs
            msgs.append(m)


def result(reply: dict) -> dict:
    """The result of a successful reply; fails the test otherwise."""
    if reply.get("ok") is not True or "result" not in reply:
        raise HarnessError(f"request failed: {reply}")
    return reply["result"]


# ---------------------------------------------------------------------------
# The World

class World:
    """Everything one test runs: temp dir, fake kernel, daemon, VMMs.

    Attributes:
      dir, runtime_dir, state_dir, logdir: paths inside the temp dir
      vmm_socket, control_socket: the daemon's sockets
      fk_socket, fk_state_file: the fake kernel's
      daemon: the current liveupdated (None before start_daemon())
      vmms: the current VMM process per vm_id
      processes: every process started, for logs and cleanup
    """

    def __init__(self, name: str = "test"):
        self.bin = binaries()
        self.dir = tempfile.mkdtemp(prefix=f"lu-{name[:40]}-")
        self.runtime_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        self.logdir = os.path.join(self.dir, "log")
        for d in (self.runtime_dir, self.state_dir, self.logdir):
            os.mkdir(d, 0o755)
        self.vmm_socket = os.path.join(self.runtime_dir, "vmm.sock")
        self.control_socket = os.path.join(self.runtime_dir, "control.sock")
        self.fk_socket = os.path.join(self.dir, "fake-kernel.sock")
        self.fk_state_file = os.path.join(self.dir, "fake-kernel.json")
        self.processes: list[Process] = []
        self.fake_kernel: Process | None = None
        self.daemon: Daemon | None = None
        self.daemon_args: list[str] = []
        self.vmms: dict[str, Vmm] = {}
        self.vmm_args: dict[str, list[str]] = {}
        self.ctl_runs: list[CtlResult] = []
        self._counter = 0
        self.closed = False

    # -- environment -------------------------------------------------------

    def c_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of every C process under the fake kernel."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                            "RUNTIME_DIRECTORY", "STATE_DIRECTORY", "JOURNAL_STREAM",
                            "WATCHDOG_USEC", "WATCHDOG_PID")}
        env["LD_PRELOAD"] = self.bin["preload"]
        env["LIVEUPDATE_FAKE_KERNEL"] = self.fk_socket
        env["LIVEUPDATED_VMM_SOCKET"] = self.vmm_socket
        env["LIVEUPDATED_CONTROL_SOCKET"] = self.control_socket
        env.setdefault("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        if extra:
            env.update(extra)
        return env

    def _name(self, base: str) -> str:
        self._counter += 1
        return f"{self._counter:02d}-{base}"

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def make_kernel_image(self, name: str = "bzImage", magic: bool = True, size: int = 4096,
                          **kw: Any) -> str:
        return make_kernel_image(self.path(name), magic=magic, size=size, **kw)

    # -- fake kernel ---------------------------------------------------------

    def start_fake_kernel(self, fail_freeze: int | None = None, timeout: float | None = None) -> Process:
        """Start the fake kernel; ready when its state file exists."""
        argv = [self.bin["fake_kernel"], "--socket", self.fk_socket,
                "--state-file", self.fk_state_file]
        if fail_freeze is not None:
            argv += ["--fail-freeze", str(fail_freeze)]
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        p = Process(self, self._name("fake-kernel"), argv, env)
        p.allowed_exit = {0}
        self.fake_kernel = p
        end = deadline(timeout)
        # The server writes its state file once it listens; no inotify in the
        # stdlib, so this is the one poll of the harness (bounded, 10 ms).
        while not os.path.exists(self.fk_state_file):
            if not p.running():
                raise HarnessError(f"fake kernel exited ({p.poll()}): {p.stderr_text()}")
            if remaining(end) <= 0:
                raise HarnessError("fake kernel did not start")
            time.sleep(0.01)
        return p

    def fake(self, *command: str) -> str:
        """Run 'fake-kernel --control SOCKET COMMAND...'; return its stdout."""
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        cp = subprocess.run([self.bin["fake_kernel"], "--control", self.fk_socket, *command],
                            env=env, capture_output=True, timeout=TIMEOUT)
        err = cp.stderr.decode("utf-8", "replace")
        rep = sanitizer_report(err)
        if rep:
            raise HarnessError(f"fake-kernel --control: sanitizer report:\n{rep}")
        if cp.returncode != 0:
            raise HarnessError(f"fake-kernel --control {' '.join(command)} failed "
                               f"({cp.returncode}): {err}")
        return cp.stdout.decode()

    def fake_state(self) -> dict:
        """The fake kernel's state: boot, device_open, kexec, sessions, ...
        Asked over its socket, so every close already made is accounted for."""
        return json.loads(self.fake("state"))

    # -- daemon ----------------------------------------------------------------

    def start_daemon(self, *args: str, wait: bool = True, timeout: float | None = None,
                     env: dict[str, str] | None = None, prefix: Iterable[str] = (),
                     pass_fds: Iterable[int] = ()) -> Daemon:
        """Start liveupdated with the World's dirs and args; by default wait
        until it answers status. env, prefix and pass_fds: see Daemon (a
        service manager stand-in, tests/integration/fake_systemd.py, uses them)."""
        if self.daemon is not None and self.daemon.running():
            raise HarnessError("a daemon is already running")
        self.daemon_args = list(args)
        d = Daemon(self, self._name("liveupdated"), self.daemon_args, env=env, prefix=prefix,
                   pass_fds=pass_fds)
        self.daemon = d
        if wait:
            self.wait_daemon_ready(timeout)
        return d

    def wait_daemon_ready(self, timeout: float | None = None) -> dict:
        """Until the control socket answers a status request; returns it."""
        d = self.daemon
        assert d is not None
        end = deadline(timeout)
        last_err: Exception | None = None
        while remaining(end) > 0:
            if not d.running():
                raise HarnessError(f"liveupdated exited ({d.poll()}) during start-up:\n"
                                   f"{d.stderr_text()[-3000:]}")
            try:
                with ApiClient(self.control_socket, timeout=remaining(end)) as c:
                    return result(c.call("status", timeout=remaining(end)))
            except (FileNotFoundError, ConnectionRefusedError) as e:
                # not bound yet: the socket appears in a moment
                last_err = e
                time.sleep(0.01)
        raise HarnessError(f"liveupdated did not answer status: {last_err}")

    def api(self, timeout: float | None = None) -> ApiClient:
        """A new raw connection to the control socket."""
        return ApiClient(self.control_socket, timeout)

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """One request on a new connection; the whole reply."""
        with self.api(timeout) as c:
            return c.call(method, params, timeout)

    def status(self) -> dict:
        return result(self.call("status"))

    def report(self) -> dict | None:
        return result(self.call("report"))["report"]

    def vmm_list(self) -> dict[str, dict]:
        return {e["vm_id"]: e for e in result(self.call("list"))["vmms"]}

    def subscribe(self) -> ApiClient:
        """A connection subscribed to the daemon's events."""
        c = self.api()
        result(c.call("subscribe"))
        return c

    def wait_state(self, state: str, timeout: float | None = None) -> dict:
        """Wait (on a subscription, not by polling) until the daemon's state is
        state; returns the status."""
        end = deadline(timeout)
        with self.subscribe() as sub:
            st = self.status()
            seen = [st["state"]]
            while st["state"] != state:
                msg = sub.read(remaining(end)) if remaining(end) > 0 else None
                if msg is None:
                    raise HarnessError(f"daemon never reached state {state}; saw {seen}")
                if msg.get("event") == "state":
                    seen.append(msg["state"])
                    if msg["state"] == state:
                        break
            return self.status()

    def wait_vmm_state(self, vm_id: str, state: str, timeout: float | None = None) -> dict:
        """Wait (on a subscription) until the daemon lists vm_id in state."""
        end = deadline(timeout)
        with self.subscribe() as sub:
            lst = self.vmm_list()
            while lst.get(vm_id, {}).get("state") != state:
                msg = sub.read(remaining(end)) if remaining(end) > 0 else None
                if msg is None:
                    raise HarnessError(f"VM {vm_id} never reached {state}; list: {lst}")
                if msg.get("event") == "vmm" and msg.get("vm_id") == vm_id:
                    lst = self.vmm_list()
            return lst[vm_id]

    def stop_daemon(self) -> int:
        """SIGTERM the daemon; it must exit 0 (and LeakSanitizer runs)."""
        d = self.daemon
        assert d is not None
        rc = d.terminate()
        if rc not in d.allowed_exit:
            raise HarnessError(f"liveupdated exited {rc} on SIGTERM:\n{d.stderr_text()[-3000:]}")
        return rc

    # -- VMMs --------------------------------------------------------------------

    def start_vmm(self, vm_id: str, mem_mib: int | None = 16, ram_fds: int | None = None,
                  mode: str | None = None, fault: str | None = None, seed: int | None = None,
                  extra: Iterable[str] = (), wait: bool = True,
                  timeout: float | None = None, nap_us: int | None = VMM_NAP_US) -> Vmm:
        """Start a reference VMM. With wait, until it printed 'registered'
        (and 'running' or, after a reboot, nothing more): the daemon has it."""
        args = ["--vm-id", vm_id, "--socket", self.vmm_socket]
        if nap_us is not None:
            args += ["--write-nap-us", str(nap_us)]
        if mem_mib is not None:
            args += ["--mem-mib", str(mem_mib)]
        if ram_fds is not None:
            args += ["--ram-fds", str(ram_fds)]
        if mode is not None:
            args += ["--mode", mode]
        if fault is not None:
            args += ["--fault", fault]
        if seed is not None:
            args += ["--seed", str(seed)]
        args += list(extra)
        self.vmm_args[vm_id] = args
        v = Vmm(self, self._name(f"vmm-{vm_id}"), vm_id, [self.bin["refvmm"], *args])
        self.vmms[vm_id] = v
        if wait:
            reg = v.wait_event("registered", timeout)
            if not reg.get("restore"):
                v.wait_event("running", timeout)
        return v

    # -- liveupdatectl -----------------------------------------------------------

    def ctl(self, *args: str, json_output: bool = True, timeout: float | None = None,
            user: int | None = None) -> CtlResult:
        """Run liveupdatectl [--json] ARGS; parse every stdout line that is JSON."""
        argv = [self.bin["ctl"]] + (["--json"] if json_output else []) + list(args)
        kw: dict[str, Any] = {}
        if user is not None:
            kw.update(user=user, group=user, extra_groups=[])
        try:
            cp = subprocess.run(argv, env=self.c_env(), capture_output=True,
                                timeout=TIMEOUT * 3 if timeout is None else timeout, **kw)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"liveupdatectl {' '.join(args)} did not finish: "
                               f"{e.stdout!r} {e.stderr!r}") from None
        out = cp.stdout.decode("utf-8", "replace")
        err = cp.stderr.decode("utf-8", "replace")
        objs = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                try:
                    objs.append(json.loads(line))
                except ValueError:
                    pass
        r = CtlResult(argv, cp.returncode, out, err, objs)
        self.ctl_runs.append(r)
        rep = sanitizer_report(err)
        if rep:
            raise HarnessError(f"sanitizer report from liveupdatectl {' '.join(args)}:\n{rep}")
        if cp.returncode < 0:
            raise HarnessError(f"liveupdatectl {' '.join(args)} died by signal {-cp.returncode}\n{r}")
        return r

    # -- the reboot --------------------------------------------------------------

    def simulate_reboot(self, boot_before: int, restart_vmms: Iterable[str] | None = None,
                        daemon_args: Iterable[str] | None = None,
                        start_daemon: Callable[[list[str]], Any] | None = None) -> dict[str, Vmm]:
        """After a successful commit: the shim SIGKILLed the daemon inside
        reboot() and the fake kernel's boot counter moved on. Check both, SIGKILL
        every old VMM (frozen; their machine is gone), start a new daemon with
        the same arguments (or daemon_args), then new VMMs with the same ids
        and arguments (restart_vmms: which ids; default all). Returns the new
        VMMs; they are started without waiting (see Vmm.wait_event).
        start_daemon(args), if given, starts the new daemon instead of
        World.start_daemon (say under a fake service manager); it must
        return once the daemon is ready."""
        d = self.daemon
        assert d is not None
        rc = d.wait()
        if rc != -signal.SIGKILL:
            raise HarnessError(f"liveupdated should have died by SIGKILL inside reboot(), "
                               f"exited {rc}:\n{d.stderr_text()[-3000:]}")
        d.rebooted = True
        d.allowed_exit.add(-signal.SIGKILL)
        st = self.fake_state()
        if st["boot"] != boot_before + 1:
            raise HarnessError(f"boot counter {st['boot']}, expected {boot_before + 1}")
        old = dict(self.vmms)
        for v in old.values():
            # a frozen VMM may already have seen the hangup (exit 4)
            v.allowed_exit.update({VMM_EXIT_HANGUP, -signal.SIGKILL})
            v.kill()
            v._thread.join(TIMEOUT)
        self.vmms = {}
        args = list(self.daemon_args if daemon_args is None else daemon_args)
        if start_daemon is None:
            self.start_daemon(*args)
        else:
            start_daemon(args)
        ids = list(old) if restart_vmms is None else list(restart_vmms)
        new = {}
        for vm_id in ids:
            args = self.vmm_args[vm_id]
            v = Vmm(self, self._name(f"vmm-{vm_id}"), vm_id, [self.bin["refvmm"], *args])
            self.vmms[vm_id] = v
            new[vm_id] = v
        return new

    # -- checks and cleanup --------------------------------------------------------

    def sanitizer_reports(self) -> list[str]:
        """Sanitizer reports of every C process so far, as 'name: report'."""
        out = []
        for p in self.processes:
            rep = sanitizer_report(p.stderr_text())
            if rep:
                out.append(f"{p.name}: {rep}")
        for r in self.ctl_runs:
            rep = sanitizer_report(r.stderr)
            if rep:
                out.append(f"liveupdatectl: {rep}")
        return out

    def close(self) -> list[str]:
        """Stop everything; return the problems found (sanitizer reports,
        unexpected exit statuses). The temp dir is kept for dump_logs()."""
        if self.closed:
            return []
        self.closed = True
        problems: list[str] = []

        # VMMs first, while the daemon still runs (a VMM leaving while idle is fine).
        for p in self.processes:
            if isinstance(p, Vmm):
                if p.running():
                    try:
                        p.stop()
                    except HarnessError as e:
                        problems.append(str(e))
                rc = p.poll()
                if rc not in p.allowed_exit:
                    problems.append(f"{p.name} exited {rc} (allowed: {sorted(p.allowed_exit)}); "
                                    f"events {p.names()}")
                if p.bad_lines:
                    problems.append(f"{p.name} printed lines that are not JSON events: "
                                    f"{p.bad_lines[:3]}")
        for p in self.processes:
            if isinstance(p, Daemon):
                if p.running():
                    try:
                        p.terminate()
                    except HarnessError as e:
                        problems.append(str(e))
                rc = p.poll()
                if rc not in p.allowed_exit:
                    problems.append(f"{p.name} exited {rc} (allowed: {sorted(p.allowed_exit)})")
        for p in self.processes:
            if p.running():
                try:
                    rc = p.terminate()
                except HarnessError as e:
                    problems.append(str(e))
                    continue
                if rc not in p.allowed_exit:
                    problems.append(f"{p.name} exited {rc} on SIGTERM")
        problems += [f"sanitizer: {r}" for r in self.sanitizer_reports()]
        for p in self.processes:
            p.close_files()
        return problems

    def dump_logs(self, out=None) -> None:
        """Print every process's stdout and stderr (tail) to out (stderr)."""
        out = out or sys.stderr
        print(f"\n===== logs of {self.dir} =====", file=out)
        for p in self.processes:
            print(f"----- {p.name}: {' '.join(p.argv)} -> rc {p.poll()}", file=out)
            for what, path in (("stdout", p.stdout_path), ("stderr", p.stderr_path)):
                try:
                    with open(path, "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                except OSError:
                    continue
                if text.strip():
                    if len(text) > 12000:
                        text = "[...]\n" + text[-12000:]
                    print(f"--- {what}:\n{text.rstrip()}", file=out)
        for r in self.ctl_runs:
            print(f"----- {r}", file=out)
        try:
            with open(self.fk_state_file) as f:
                print(f"----- fake kernel state file:\n{f.read()}", file=out)
        except OSError:
            pass
        out.flush()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# unittest glue

def fd_count(pid: int) -> int:
    """How many fds the process holds now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def sessions_by_vm(fk: dict) -> dict[str, dict]:
    """The fake kernel's VM sessions (its state's "sessions") by vm id: the
    part of the session name after its last dot."""
    return {s["name"].rsplit(".", 1)[1]: s for s in fk["sessions"] if s["name"] != "liveupdated"}


class WorldTestCase(unittest.TestCase):
    """A TestCase with self.world: a World whose fake kernel is running
    (override fake_kernel_args() to change its options). After the test the
    World is closed; sanitizer reports or unexpected exits fail the test; on
    any failure every log is printed."""

    maxDiff = None

    def fake_kernel_args(self) -> dict:
        return {}

    def setUp(self) -> None:
        self.deferred: list[str] = []
        self.world = World(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self._close_world)
        self.world.start_fake_kernel(**self.fake_kernel_args())

    def _close_world(self) -> None:
        problems = self.world.close()
        problems += [f"deferred check failed: {d}" for d in self.deferred]
        if problems:
            self.fail("after the test:\n  " + "\n  ".join(problems))

    def expect(self, condition: Any, message: str) -> bool:
        """A check that fails the test at its end rather than now, so that
        one wrong detail (say a misnamed member) does not hide the rest of
        the scenario. Returns condition's truth."""
        if not condition:
            self.deferred.append(message)
        return bool(condition)

    def report_vmms(self, rep: dict) -> dict[str, dict]:
        """The report's per-VM entries by vm_id. The API names the list
        'vmms'; any other name is a (deferred) failure, but the entries are
        still checked."""
        vmms = rep.get("vmms")
        if not self.expect(isinstance(vmms, list),
                           f"report has no 'vmms' list (man/liveupdated-api.md); members: "
                           f"{sorted(rep)}"):
            vmms = rep.get("vms") or []
        return {r["vm_id"]: r for r in vmms}

    def run(self, result=None):  # noqa: D401 - unittest API
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            world = getattr(self, "world", None)
            if world is not None:
                if len(result.failures) + len(result.errors) > before:
                    world.dump_logs()
                    world.close()
                world.remove()

    # -- assertions shared by the scenarios ------------------------------------

    def assertRestoredIntact(self, v: Vmm, update_id: str, nbytes: int) -> None:
        """A restarted VMM got its VM back from that update: every one of
        nbytes verified against its model and checksum, then it resumed."""
        reg = v.wait_event("registered")
        self.assertTrue(reg["restore"], reg)
        res = v.wait_event("restored")
        self.assertEqual(res["update_id"], update_id, res)
        self.assertEqual(res["verified_bytes"], nbytes, res)
        self.assertTrue(res["checksum_ok"], res)
        v.wait_event("resumed")

    def assertCtlOk(self, r: CtlResult) -> Any:
        self.assertEqual(r.rc, CTL_OK, str(r))
        return r.json

    def assertCtlError(self, r: CtlResult, code: str, rc: int = CTL_FAILED) -> dict:
        """liveupdatectl failed with that exit status and printed that error code."""
        self.assertEqual(r.rc, rc, str(r))
        err = r.json
        self.assertEqual(err.get("code"), code, str(r))
        self.assertIsInstance(err.get("message"), str, str(r))
        self.assertTrue(err["message"], str(r))
        return err

    def assertNothingPending(self, st: dict | None = None, kexec_loaded: bool = False) -> dict:
        """The fake kernel holds no session (nothing preserved) and no image
        (unless kexec_loaded), and the device is closed."""
        st = st or self.world.fake_state()
        self.assertEqual(st["sessions"], [], f"sessions left in the kernel: {st}")
        if not kexec_loaded:
            self.assertIsNone(st["kexec"], f"a kexec image is still loaded: {st}")
        self.assertFalse(st["device_open"], f"/dev/liveupdate is still open: {st}")
        return st

    def assertIdle(self, last_outcome: str | None = "__any__") -> dict:
        st = self.world.status()
        self.assertEqual(st["state"], "idle", st)
        self.assertIsNone(st["update_id"], st)
        self.assertIsNone(st["kernel"], st)
        if last_outcome != "__any__":
            self.assertEqual(st["last_outcome"], last_outcome, st)
        return st

    def assertThawedIntact(self, v: Vmm, count: int = 1) -> dict:
        """The VMM got THAW, verified every byte of its RAM, and runs on:
        its writer has written again since."""
        ev = v.wait_event("thawed", count=count, fail_on_error=False)
        self.assertGreater(ev["verified_bytes"], 0, ev)
        self.assertLess(ev["error"], 0, f"THAW should carry the abort's errno: {ev}")
        writing = v.wait_event("writing", count=count, pred=lambda e: e["after"] == "thaw",
                               fail_on_error=False)
        self.assertGreater(writing["words"], 0, writing)
        self.assertTrue(v.running(), f"{v.vm_id} is not running after THAW")
        return ev

    def assertVerifiedIntact(self, v: Vmm, nbytes: int | None = None) -> dict:
        """On SIGUSR1 the VMM checked every byte of its RAM (nbytes of them,
        if given) and found each as the model wants it; unless frozen, its
        writer has written again since."""
        done = len(v.find("writing", lambda e: e["after"] == "verify"))
        ev = v.verify()
        self.assertEqual(ev["bad_words"], 0, ev)
        self.assertGreater(ev["verified_bytes"], 0, ev)
        if nbytes is not None:
            self.assertEqual(ev["verified_bytes"], nbytes, ev)
        if not ev["frozen"]:
            writing = v.wait_event("writing", count=done + 1,
                                   pred=lambda e: e["after"] == "verify")
            self.assertGreater(writing["words"], 0, writing)
        self.assertTrue(v.running(), f"{v.vm_id} is not running after the check")
        return ev


def main() -> None:
    """Run the calling module's tests (verbosely, for meson's log)."""
    unittest.main(module="__main__", verbosity=2)
