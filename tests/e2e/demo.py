# SPDX-License-Identifier: LGPL-2.1-or-later
"""A readable timeline of the end-to-end cycle, for tests/demo."""

import json

import guest


def mib(n):
    return f"{n / (1 << 20):.0f} MiB"


def ms(us):
    return "-" if us is None else f"{us / 1000:.1f} ms"


class Timeline:
    """Turns the guest's serial lines into a few lines a person can follow."""

    def __init__(self, kernel_dir):
        self.kernel_dir = kernel_dir
        self.boots = 0
        self.seen = set()

    def say(self, t, text):
        print(f"  {t:7.1f}s  {text}", flush=True)

    def once(self, key, t, text):
        if key not in self.seen:
            self.seen.add(key)
            self.say(t, text)

    def on_line(self, t, line):
        m = guest.LINUX_VERSION.search(line)
        if m:
            self.boots += 1
            what = "booting" if self.boots == 1 else "the new kernel is booting"
            self.say(t, f"{what}: Linux {m.group(1)}")
            return
        if line.startswith("E2E "):
            self.on_e2e(t, line[4:])
            return
        m = guest.VMM_EVENT.match(line)
        if m:
            try:
                self.on_vmm(t, m.group(1), json.loads(m.group(2)))
            except json.JSONDecodeError:
                pass
            return
        if guest.KERNEL_TROUBLE.search(line):
            self.say(t, f"KERNEL: {line}")

    def on_e2e(self, t, words):
        if words.startswith("begin "):
            stage = "before" if "stage=1" in words.split() else "after"
            self.say(t, f"init is up ({stage} the update); starting liveupdated and the VMMs")
        elif words == "vmms running":
            self.say(t, "every VM runs; its writer threads keep changing guest RAM")
        elif words == "check prepare ok":
            self.say(t, "prepare: next kernel loaded with kexec_file_load, "
                        "guest RAM preserved in LUO sessions")
        elif words == "commit":
            self.say(t, "commit: freeze every VMM, then kexec")
        elif words == "vmms writing":
            self.say(t, "every VM writes again")
        elif words.startswith("fail "):
            self.say(t, f"FAILED: {words[5:]}")

    def on_vmm(self, t, vm, ev):
        kind = ev.get("event")
        if kind == "frozen":
            self.once(("frozen", vm), t, f"{vm} frozen")
        elif kind == "restored":
            ok = "intact" if ev.get("checksum_ok") else "CORRUPT"
            self.say(t, f"{vm} has its memory back: {mib(ev.get('verified_bytes', 0))} "
                        f"verified byte by byte, {ok}")
        elif kind == "resumed":
            self.say(t, f"{vm} resumed: blackout {ms(ev.get('blackout_us'))}")
        elif kind == "error":
            self.say(t, f"{vm} error: {ev.get('message')}")


def print_summary(s):
    p = s["phases_us"]
    b = s["blackout_us"]
    print()
    print(f"Live update of {s['vmms']} VMs on Linux {s['kernel']} ({s['accel']}):")
    print(f"  guest RAM verified   {mib(s['verified_bytes'])}, every byte")
    print(f"  blackout per VM      {ms(b['min'])} .. {ms(b['max'])} (TSC, read by the VMMs)")
    print("  where the time went  (TSC, read by liveupdated)")
    print(f"    freeze barrier     {ms(p['freeze_barrier'])}")
    print(f"    kexec and boot     {ms(p['kexec_and_boot'])}")
    print(f"    daemon restore     {ms(p['daemon_restore'])}")
    print(f"    handback           {ms(p['handback'])}")
    print(f"    total              {ms(s['daemon_blackout_us'])}")
    if s["accel"] == "tcg":
        print("  (QEMU emulates the CPU in software here: a real host is far faster.)")
    print()
