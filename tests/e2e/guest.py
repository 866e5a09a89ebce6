# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots the project's kernel under QEMU and reads what the guest prints.

The guest runs one scenario (tests/e2e/guest/) and prints on its serial
console: the kernel's log, "E2E ..." lines from its init, "vmm ID: {json}"
events from the reference VMMs and "liveupdated: ..." from the daemon.
"""

import json
import os
import re
import selectors
import subprocess
import tempfile
import time

# Any of these in the kernel's log fails the run, whatever else it printed.
KERNEL_TROUBLE = re.compile(
    r"Kernel panic|Oops:|BUG:|WARNING: CPU:|general protection fault|"
    r"Call Trace:|kernel BUG at|UBSAN:|KASAN:|"
    # a DMA or interrupt the IOMMU blocked: a device lost its translation
    r"DMAR: \[(?:DMA|INTR)|DMAR: DRHD: handling fault"
)
LINUX_VERSION = re.compile(r"\] Linux version (\S+)")
VMM_EVENT = re.compile(r"^vmm (\S+): (\{.*\})\s*$")


class GuestRun:
    """Everything one boot-to-poweroff run of the guest printed."""

    def __init__(self):
        self.lines = []          # (host seconds since start, text)
        self.e2e = []            # (seconds, words after "E2E ")
        self.events = []         # (seconds, vm_id, event dict)
        self.kernels = []        # (seconds, release) for every kernel that booted
        self.trouble = []        # kernel log lines matching KERNEL_TROUBLE
        self.timed_out = False
        self.accel = None
        self.returncode = None

    def add(self, t, line):
        self.lines.append((t, line))
        if line.startswith("E2E "):
            self.e2e.append((t, line[4:]))
        m = VMM_EVENT.match(line)
        if m:
            try:
                self.events.append((t, m.group(1), json.loads(m.group(2))))
            except json.JSONDecodeError:
                pass
        m = LINUX_VERSION.search(line)
        if m:
            self.kernels.append((t, m.group(1)))
        if KERNEL_TROUBLE.search(line):
            self.trouble.append(line)

    def e2e_lines(self, prefix):
        return [words for _, words in self.e2e if words.startswith(prefix)]

    def e2e_json(self, prefix):
        """The JSON after each "E2E PREFIX " line."""
        out = []
        for words in self.e2e_lines(prefix + " "):
            try:
                out.append(json.loads(words[len(prefix) + 1:]))
            except json.JSONDecodeError:
                out.append(None)
        return out

    def vmm_events(self, vm_id, name):
        return [e for _, v, e in self.events if v == vm_id and e.get("event") == name]

    def stage_lines(self, stage):
        """Lines printed after "E2E begin ... stage=N" (up to the next begin)."""
        out, inside = [], False
        for _, line in self.lines:
            if line.startswith("E2E begin "):
                inside = f"stage={stage}" in line.split()
            if inside:
                out.append(line)
        return out


def replay(path, mutate=lambda line: line):
    """A GuestRun from a recorded serial log, each line passed through
    mutate first (None drops it): how the harness's checks are tested."""
    with open(path) as f:
        lines = f.read().splitlines()
    run = GuestRun()
    run.accel = "tcg"
    for i, line in enumerate(lines):
        line = mutate(line)
        if line is not None:
            run.add(float(i), line)
    return run


def kvm_works(kernel):
    """Whether a guest really runs under KVM here, not just whether /dev/kvm
    opens: a kernel that prints its banner within seconds. The answer is kept
    for this boot of the host, so only the first test pays for asking."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
    except OSError:
        boot_id = "unknown"
    cache = os.path.join(tempfile.gettempdir(), f"liveupdated-kvm-works.{boot_id}")
    try:
        with open(cache) as f:
            return f.read().strip() == "yes"
    except OSError:
        pass
    cmd = ["qemu-system-x86_64", "-M", "q35", "-accel", "kvm", "-m", "256",
           "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
           "-kernel", kernel, "-append", "console=ttyS0 panic=-1"]
    works = False
    try:
        with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as proc:
            deadline = time.monotonic() + 10
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            seen = b""
            while not works and time.monotonic() < deadline:
                if sel.select(0.5):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    seen = (seen + chunk)[-4096:]
                    works = b"Linux version" in seen
            proc.kill()
    except OSError:
        works = False
    with open(cache, "w") as f:
        f.write("yes\n" if works else "no\n")
    return works


def qemu_accel(kernel):
    """KVM when it works, else software emulation; LIVEUPDATED_E2E_ACCEL forces one."""
    forced = os.environ.get("LIVEUPDATED_E2E_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    return "kvm" if kvm_works(kernel) else "tcg"


def qemu_command(kernel, initrd, disk, append, memory_mib=1024, cpus=2, devices=()):
    """initrd None: the kernel mounts its root from the disk (root= in append);
    devices: more -device arguments."""
    return [
        "qemu-system-x86_64",
        "-M", "q35,kernel-irqchip=split",
        "-accel", qemu_accel(kernel),
        "-cpu", "max",
        "-smp", str(cpus),
        "-m", str(memory_mib),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", "stdio",
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-drive", f"file={disk},if=none,id=state,format=raw",
        "-device", "virtio-blk-pci,drive=state",
    ] + [arg for d in devices for arg in ("-device", d)] + [
        "-kernel", kernel,
    ] + (["-initrd", initrd] if initrd else []) + [
        "-append", append,
    ]


def boot(kernel, initrd, disk, scenario, timeout, on_line=None, extra_append="", devices=()):
    """Runs the guest until it powers off or the timeout; returns a GuestRun."""
    # no_timer_check: under software emulation on a busy host the kernel's
    # early check of the IO-APIC timer can miss its ticks and panic ("timer
    # doesn't work through Interrupt-remapped IO-APIC"); the timer works.
    append = ("console=ttyS0 liveupdate=on panic=-1 oops=panic no_timer_check "
              f"lu_e2e={scenario} {extra_append}").strip()
    run = GuestRun()
    run.accel = qemu_accel(kernel)
    start = time.monotonic()
    proc = subprocess.Popen(qemu_command(kernel, initrd, disk, append, devices=devices),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    try:
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                run.timed_out = True
                break
            if not sel.select(min(left, 1.0)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").rstrip("\r")
                t = time.monotonic() - start
                run.add(t, line)
                if on_line:
                    on_line(t, line)
    finally:
        if buf:
            run.add(time.monotonic() - start, buf.decode("utf-8", "replace"))
        if proc.poll() is None:
            proc.kill()
        run.returncode = proc.wait()
        sel.close()
    return run
