# SPDX-License-Identifier: LGPL-2.1-or-later
"""Passed-through devices across an update, against a sysfs and a /boot of
the test's own (--sysfs-dir, --boot-dir).

A device bound to vfio-pci (0000:00:07.0, edu's ids, IOMMU group 2) makes
prepare ask both kernels' configs for the device hand-over options, and
the update go on only if some VMM preserved the device: otherwise it is
rolled back like any failed prepare. A VMM that preserves it (here a raw
one, with /dev/null standing in for its VFIO device file and the fake
kernel's device-files knob for the vfio-pci handler) has it tracked
through the kexec: preserved, restored-domain, and hot-swapped once its
session is finished; a FINISH the kernel refuses (EBUSY) loses nothing.
"""

import errno
import json
import os
import struct
import time

import fake_systemd
import harness
from test_vmm_protocol import (FREEZE, FROZEN, PREPARE, PREPARE_DONE, PRESERVE_FD, RESTORE,
                               RESUMED, THAW, RawVmm, hello_msg, token_msg)

SLOT = "0000:00:07.0"
DEVICE_OPTIONS = ("CONFIG_PCI_LIVEUPDATE", "CONFIG_IOMMU_LIVEUPDATE",
                  "CONFIG_INTEL_IOMMU_LIVEUPDATE", "CONFIG_IOMMUFD_LIVEUPDATE",
                  "CONFIG_VFIO_PCI_LIVEUPDATE")
DEVICE_CONFIG = "".join(f"{o}=y\n" for o in DEVICE_OPTIONS)
NEXT_CONFIG = harness.LUO_CONFIG + DEVICE_CONFIG
RELEASE = os.uname().release
REPLY_RESTORE_PENDING, REPLY_RESUMED = 1, 4

#: The VMMs' libraries look for a restarted daemon this long.
os.environ["LIVEUPDATE_VMM_RECONNECT_TIMEOUT_MS"] = str(int(harness.TIMEOUT * 1000))


class FakeSysfs:
    """A sysfs libpci and the daemon read: PCI functions under bus/pci, and
    /dev/null's dev/char entry made the vfio-dev of SLOT."""

    def __init__(self, root: str):
        self.root = root
        for d in ("bus/pci/devices", "bus/pci/drivers/vfio-pci", "bus/pci/groups/2", "dev/char"):
            os.makedirs(os.path.join(root, d))

    def add_device(self, slot: str, vendor: int = 0x1234, device: int = 0x11e8,
                   group: int = 2) -> None:
        d = os.path.join(self.root, "bus/pci/devices", slot)
        os.mkdir(d)
        config = bytearray(256)
        config[0:4] = struct.pack("<HH", vendor, device)
        config[0x0b] = 0xff
        files = {"config": bytes(config), "vendor": f"0x{vendor:04x}\n".encode(),
                 "device": f"0x{device:04x}\n".encode(), "class": b"0xff0000\n", "irq": b"0\n"}
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        os.symlink(f"../../groups/{group}", os.path.join(d, "iommu_group"))

    def bind(self, slot: str) -> None:
        os.symlink("../../drivers/vfio-pci", os.path.join(self.root, "bus/pci/devices", slot,
                                                         "driver"))

    def unbind(self, slot: str) -> None:
        os.unlink(os.path.join(self.root, "bus/pci/devices", slot, "driver"))

    def vfio_dev_null(self, slot: str) -> None:
        """/sys/dev/char/MAJ:MIN of /dev/null leads where the kernel's would for
        /dev/vfio/devices/vfio0 of slot."""
        vfio = os.path.join(self.root, "devices/pci0000:00", slot, "vfio-dev/vfio0")
        os.makedirs(vfio)
        os.symlink(f"../../../{slot}", os.path.join(vfio, "device"))
        rdev = os.stat("/dev/null").st_rdev
        os.symlink(f"../../devices/pci0000:00/{slot}/vfio-dev/vfio0",
                   os.path.join(self.root, "dev/char", f"{os.major(rdev)}:{os.minor(rdev)}"))


class DeviceWorld:
    """For a WorldTestCase: the device bound in a sysfs of the test's own,
    and a boot directory for the running kernel's config."""

    def setUp(self):
        super().setUp()
        w = self.world
        self.sysfs = FakeSysfs(w.path("sys"))
        self.sysfs.add_device(SLOT)
        self.sysfs.bind(SLOT)
        self.boot = w.path("boot")
        os.mkdir(self.boot)
        self.daemon_args = (f"--sysfs-dir={self.sysfs.root}", f"--boot-dir={self.boot}")

    def running_config(self, text: str | None) -> None:
        path = os.path.join(self.boot, f"config-{RELEASE}")
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, "w") as f:
            f.write(text)

    def device(self) -> dict:
        devices = self.world.status()["devices"]
        self.assertEqual(len(devices), 1, devices)
        return devices[0]

    def hello(self, vmm: RawVmm, vm_id: str, version: int = 2) -> tuple[int, int]:
        """HELLO; the reply's (error, flags)."""
        vmm.seq += 1
        vmm.send(hello_msg(vmm.seq, vm_id, version))
        kind, msg, _ = vmm.recv()
        return struct.unpack("<IIiI", msg)[2:]

    def ram(self) -> int:
        fd = os.memfd_create("ram")
        self.addCleanup(os.close, fd)
        os.ftruncate(fd, 4096)
        return fd

    def prepare_vmm(self, vmm: RawVmm, fds: list[int]) -> None:
        """vmm answers PREPARE, preserving fds as tokens 1, 2, ..."""
        self.assertEqual(vmm.recv()[0], PREPARE)
        for token, fd in enumerate(fds, 1):
            vmm.seq += 1
            self.assertEqual(vmm.request(token_msg(PRESERVE_FD, vmm.seq, token), [fd])[0], 0)
        vmm.seq += 1
        self.assertEqual(vmm.request(token_msg(PREPARE_DONE, vmm.seq, 0)[:8])[0], 0)

    def prepare_with_device(self, vmm: RawVmm, image: str, others: tuple = ()) -> dict:
        """prepare, vmm preserving a memfd (token 1) and /dev/null as the
        device file (token 2), each of others a memfd; the prepare's result."""
        w = self.world
        dev = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.addCleanup(os.close, dev)
        with w.api() as c:
            c.request("prepare", {"kernel": image})
            self.prepare_vmm(vmm, [self.ram(), dev])
            for other in others:
                self.prepare_vmm(other, [self.ram()])
            return harness.result(c.read_reply())

    def commit_and_reboot(self, *vmms: RawVmm) -> None:
        """commit, every VMM freezing, and the jump to the new kernel."""
        w = self.world
        boot = w.fake_state()["boot"]
        with w.api() as c:
            c.request("commit")
            for vmm in vmms:
                self.assertEqual(vmm.recv()[0], FREEZE)
                vmm.send(struct.pack("<II", FROZEN, 0))
            self.assertEqual(c.read_reply()["result"]["state"], "rebooting")
        w.simulate_reboot(boot, restart_vmms=[])
        for vmm in vmms:
            vmm.close()

    def come_back(self, vm_id: str) -> RawVmm:
        """A restarted VMM says HELLO and gets its RESTORE (its fds closed)."""
        back = RawVmm(self.world.vmm_socket)
        self.addCleanup(back.close)
        self.assertEqual(self.hello(back, vm_id), (0, REPLY_RESTORE_PENDING))
        kind, msg, fds = back.recv()
        self.assertEqual((kind, len(fds)), (RESTORE, 1))
        for fd in fds:
            os.close(fd)
        return back

    def resumed(self, vmm: RawVmm) -> int:
        vmm.seq += 1
        return vmm.request(struct.pack("<II", RESUMED, vmm.seq))[0]

    def device_world(self) -> str:
        """The device's VFIO file is /dev/null, the kernels can carry it, the
        daemon runs; the next kernel's image."""
        w = self.world
        self.running_config(DEVICE_CONFIG)
        self.sysfs.vfio_dev_null(SLOT)
        w.fake("device-files", "1")
        w.start_daemon(*self.daemon_args)
        return w.make_kernel_image(config=NEXT_CONFIG)


class TestDevices(DeviceWorld, harness.WorldTestCase):

    def assertRefused(self, image: str, *words: str) -> dict:
        """prepare is refused with device-not-preservable before any VMM hears
        of it, naming the device and the words; nothing is left behind."""
        w = self.world
        reply = w.call("prepare", {"kernel": image})
        self.assertFalse(reply["ok"], reply)
        err = reply["error"]
        self.assertEqual(err["code"], "device-not-preservable", reply)
        self.assertEqual(err.get("errno"), "EOPNOTSUPP", reply)
        self.assertIn(f"1 device(s) bound to vfio-pci: {SLOT} [1234:11e8] IOMMU group 2. ",
                      err["message"])
        for word in words:
            self.assertIn(word, err["message"])
        self.assertNothingPending()
        self.assertIdle()
        return err

    def test_kernels_without_support(self):
        w = self.world
        w.start_daemon(*self.daemon_args)
        vmm = w.start_vmm("vm-a", mem_mib=4)
        image = w.make_kernel_image(config=NEXT_CONFIG)

        # the running kernel: no config, then one that lacks an option
        self.running_config(None)
        self.assertRefused(image, f"The running kernel (linux {RELEASE}) has no ",
                           f"config-{RELEASE} to tell whether it can carry devices over")
        d = self.device()
        self.assertFalse(d["preservable"], d)
        self.assertIn("The running kernel", d["reason"])
        self.running_config(harness.LUO_CONFIG + DEVICE_CONFIG.replace(
            "CONFIG_VFIO_PCI_LIVEUPDATE=y", "CONFIG_VFIO_PCI_LIVEUPDATE=m"))
        self.assertRefused(image, f"The running kernel (linux {RELEASE}) lacks "
                           "CONFIG_VFIO_PCI_LIVEUPDATE in ")

        # the next kernel, beside its image
        self.running_config(DEVICE_CONFIG)
        d = self.device()
        self.assertEqual((d["preservable"], d["reason"], d["handover"], d["vm_id"]),
                         (True, None, "none", None), d)
        os.mkdir(w.path("old"))
        old = w.make_kernel_image(os.path.join("old", "bzImage"), config=harness.LUO_CONFIG)
        self.assertRefused(old, f"The next kernel (linux {harness.TEST_RELEASE}) lacks "
                           "CONFIG_PCI_LIVEUPDATE, CONFIG_IOMMU_LIVEUPDATE, ")
        self.assertEqual(vmm.names(), ["registered", "running"], "the VMM never heard of it")

        # no device bound: the same kernel prepares
        self.sysfs.unbind(SLOT)
        self.assertEqual(w.status()["devices"], [])
        self.assertCtlOk(w.ctl("prepare", old))
        self.assertCtlOk(w.ctl("abort"))
        self.assertThawedIntact(vmm)
        self.assertNothingPending()

    def test_device_no_vmm_preserved(self):
        """Both kernels can, but no VMM preserved the device: once every VMM
        answered, the update is rolled back like any failed prepare."""
        w = self.world
        self.running_config(DEVICE_CONFIG)
        w.start_daemon(*self.daemon_args)
        vmms = [w.start_vmm(f"vm-{i}", mem_mib=4) for i in range(2)]
        image = w.make_kernel_image(config=NEXT_CONFIG)

        r = w.ctl("prepare", image)
        err = self.assertCtlError(r, "device-not-preservable")
        self.assertIn(f"{SLOT} [1234:11e8] IOMMU group 2 is bound to vfio-pci but no VMM "
                      "preserved it: the update would reset it under its guest", err["message"])
        self.assertIn("lu_vmm_preserve_fd()", err["message"])
        for v in vmms:
            v.wait_event("prepared")  # they did answer
            self.assertThawedIntact(v)
        self.assertNothingPending()
        self.assertIdle(last_outcome="aborted")
        rep = w.report()
        self.assertEqual(rep["error"]["code"], "device-not-preservable", rep)
        self.assertEqual([e["state"] for e in w.vmm_list().values()], ["registered"] * 2)

        # bound after prepare: commit finds it and rolls back just the same
        self.sysfs.unbind(SLOT)
        self.assertCtlOk(w.ctl("prepare", image))
        self.sysfs.bind(SLOT)
        r = w.ctl("commit")
        err = self.assertCtlError(r, "device-not-preservable")
        self.assertIn("no VMM preserved it", err["message"])
        for v in vmms:
            self.assertThawedIntact(v, count=2)
        self.assertNothingPending()
        self.assertIdle(last_outcome="aborted")

    def test_handover(self):
        """A VMM preserves RAM and the device: preserved, restored-domain after
        the kexec, FINISH refused (EBUSY) without loss, then hot-swapped."""
        w = self.world
        self.running_config(DEVICE_CONFIG)
        self.sysfs.vfio_dev_null(SLOT)
        w.fake("device-files", "1")
        w.start_daemon(*self.daemon_args)
        image = w.make_kernel_image(config=NEXT_CONFIG)

        vmm = RawVmm(w.vmm_socket)
        self.addCleanup(vmm.close)
        self.assertEqual(vmm.hello("vm-dev"), 0)
        self.prepare_with_device(vmm, image)
        d = self.device()
        self.assertEqual((d["preservable"], d["handover"], d["vm_id"]),
                         (True, "preserved", "vm-dev"), d)
        self.assertEqual(w.vmm_list()["vm-dev"]["devices"], [SLOT])
        # what a restarted daemon would pick up
        with open(os.path.join(w.state_dir, "update.json")) as f:
            saved = json.load(f)
        self.assertEqual([(v["vm_id"], v["devices"]) for v in saved["manifest"]["vms"]],
                         [("vm-dev", [SLOT])], saved)
        text = w.ctl("status", json_output=False).stdout
        self.assertIn(f"  {SLOT} [1234:11e8] IOMMU group 2: preservable, preserved by vm-dev",
                      text)

        boot = w.fake_state()["boot"]
        with w.api() as c:
            c.request("commit")
            self.assertEqual(vmm.recv()[0], FREEZE)
            vmm.send(struct.pack("<II", FROZEN, 0))
            self.assertEqual(c.read_reply()["result"]["state"], "rebooting")
        w.simulate_reboot(boot, restart_vmms=[])
        vmm.close()

        # the new kernel: the device is the manifest's, on the handed-over tables
        d = self.device()
        self.assertEqual((d["handover"], d["vm_id"], d["finish_error"]),
                         ("restored-domain", "vm-dev", None), d)
        fk = w.fake_state()
        files = harness.sessions_by_vm(fk)["vm-dev"]["files"]
        self.assertEqual([(f["token"], f["device"]) for f in files], [(1, False), (2, True)])

        back = RawVmm(w.vmm_socket)
        self.addCleanup(back.close)
        self.assertEqual(self.hello(back, "vm-dev"), (0, REPLY_RESTORE_PENDING))
        kind, msg, fds = back.recv()
        self.assertEqual((kind, len(fds)), (RESTORE, 1))
        for fd in fds:
            os.close(fd)

        # FINISH refused: the VMM hears it, nothing is lost, it may say RESUMED again
        session = w.vmm_list()["vm-dev"]["session"]
        w.fake("fail-finish", str(errno.EBUSY), session)
        back.seq += 1
        self.assertEqual(back.request(struct.pack("<II", RESUMED, back.seq))[0], -errno.EBUSY)
        st = w.status()
        self.assertEqual(st["state"], "finishing", st)
        d = self.device()
        self.assertEqual((d["handover"], d["finish_error"]), ("restored-domain", "EBUSY"), d)
        e = w.vmm_list()["vm-dev"]
        self.assertEqual((e["state"], e["finish_error"], e["session"]),
                         ("restored", "EBUSY", session), e)
        fk = w.fake_state()
        self.assertEqual(fk["finish_failures"], 1, fk)
        self.assertFalse(harness.sessions_by_vm(fk)["vm-dev"]["finished"], fk)
        self.assertIn("FINISH refused (EBUSY)", w.ctl("status", json_output=False).stdout)
        self.assertIn("refused to finish its session", w.daemon.stderr_text())

        w.fake("fail-finish", "0")
        back.seq += 1
        self.assertEqual(back.request(struct.pack("<II", RESUMED, back.seq))[0], 0)
        self.assertIdle(last_outcome="success")
        d = self.device()
        self.assertEqual((d["handover"], d["vm_id"], d["finish_error"]),
                         ("hot-swapped", "vm-dev", None), d)
        self.assertIn("hot-swapped to its new domain", w.ctl("status", json_output=False).stdout)
        self.assertNothingPending()

    def test_release_refused(self):
        """A VMM took its device over and went away holding it: FINISH is
        refused, so release fails (bad-state) and keeps the session, its
        memory and the device's record; once FINISH can succeed, release does."""
        w = self.world
        image = self.device_world()
        vmm = RawVmm(w.vmm_socket)
        self.addCleanup(vmm.close)
        self.assertEqual(vmm.hello("vm-dev"), 0)
        self.prepare_with_device(vmm, image)
        self.commit_and_reboot(vmm)

        back = self.come_back("vm-dev")
        session = w.vmm_list()["vm-dev"]["session"]
        w.fake("fail-finish", str(errno.EBUSY), session)
        back.close()
        end = time.monotonic() + harness.TIMEOUT
        while w.vmm_list()["vm-dev"]["connected"] and time.monotonic() < end:
            time.sleep(0.01)  # a disconnect in restored changes no state: no event
        e = w.vmm_list()["vm-dev"]
        self.assertEqual((e["state"], e["connected"]), ("restored", False), e)

        err = self.assertCtlError(w.ctl("release", "vm-dev"), "bad-state")
        self.assertIn("VM vm-dev's session cannot be finished yet: ", err["message"])
        self.assertIn("its VMM must attach its device to a new domain, or close it",
                      err["message"])
        e = w.vmm_list()["vm-dev"]
        self.assertEqual((e["state"], e["session"], e["finish_error"]),
                         ("restored", session, "EBUSY"), e)
        d = self.device()
        self.assertEqual((d["handover"], d["vm_id"]), ("restored-domain", "vm-dev"), d)
        fk = w.fake_state()
        self.assertEqual(fk["finish_failures"], 1, fk)
        kept = harness.sessions_by_vm(fk)["vm-dev"]
        self.assertFalse(kept["finished"], fk)
        self.assertEqual(len(kept["files"]), 2, fk)
        self.assertEqual(w.status()["state"], "finishing")

        w.fake("fail-finish", "0")
        self.assertEqual(self.assertCtlOk(w.ctl("release", "vm-dev")),
                         {"vm_id": "vm-dev", "released": True})
        self.assertIdle(last_outcome="failed")
        self.assertEqual(w.status()["devices"][0]["handover"], "none")
        self.assertNotIn("vm-dev", harness.sessions_by_vm(w.fake_state()))

    def test_finish_waits_for_awaiting(self):
        """The VMM with a device resumes while another VM still awaits its
        restore: RESUMED is answered at once, its FINISH (the page-by-page
        check) waits until the other is restored, then runs; a refusal
        then is shown and RESUMED may be said again."""
        w = self.world
        image = self.device_world()
        vmm, plain = RawVmm(w.vmm_socket), RawVmm(w.vmm_socket)
        self.addCleanup(vmm.close)
        self.addCleanup(plain.close)
        self.assertEqual(vmm.hello("vm-dev"), 0)
        self.assertEqual(plain.hello("vm-b"), 0)
        self.prepare_with_device(vmm, image, others=(plain,))
        self.commit_and_reboot(vmm, plain)

        back = self.come_back("vm-dev")
        session = w.vmm_list()["vm-dev"]["session"]
        w.fake("fail-finish", str(errno.EBUSY), session)
        self.assertEqual(self.resumed(back), 0)
        fk = w.fake_state()
        self.assertEqual(fk["finish_failures"], 0, "FINISH waits for vm-b")
        self.assertFalse(harness.sessions_by_vm(fk)["vm-dev"]["finished"], fk)
        self.assertEqual(w.vmm_list()["vm-dev"]["state"], "restored")
        self.assertIn("finished once no VMM awaits its restore", w.daemon.stderr_text())

        # vm-b is restored: nobody awaits, the deferred FINISH runs and is refused
        b = self.come_back("vm-b")
        fk = w.fake_state()
        self.assertEqual(fk["finish_failures"], 1, fk)
        e = w.vmm_list()["vm-dev"]
        self.assertEqual((e["state"], e["finish_error"]), ("restored", "EBUSY"), e)
        self.assertEqual(self.resumed(b), 0)
        self.assertEqual(w.status()["state"], "finishing")

        # said again, with nobody awaiting: at once
        w.fake("fail-finish", "0")
        self.assertEqual(self.resumed(back), 0)
        self.assertIdle(last_outcome="success")
        self.assertEqual(self.device()["handover"], "hot-swapped")
        self.assertNothingPending()

    def test_two_vmms_same_device(self):
        """The same device preserved by a second VMM is refused (EBUSY), and
        a VMM over --max-fds-per-vmm gets E2BIG."""
        w = self.world
        self.running_config(DEVICE_CONFIG)
        self.sysfs.vfio_dev_null(SLOT)
        w.fake("device-files", "1")
        w.start_daemon(*self.daemon_args, "--max-fds-per-vmm=2")
        image = w.make_kernel_image(config=NEXT_CONFIG)
        a, b = RawVmm(w.vmm_socket), RawVmm(w.vmm_socket)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertEqual(a.hello("vm-a"), 0)
        self.assertEqual(b.hello("vm-b"), 0)
        dev = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.addCleanup(os.close, dev)
        with w.api() as c:
            c.request("prepare", {"kernel": image})
            self.assertEqual(a.recv()[0], PREPARE)
            self.assertEqual(b.recv()[0], PREPARE)
            for token, fd in ((1, self.ram()), (2, dev)):
                a.seq += 1
                self.assertEqual(a.request(token_msg(PRESERVE_FD, a.seq, token), [fd])[0], 0)
            a.seq += 1
            self.assertEqual(a.request(token_msg(PRESERVE_FD, a.seq, 3), [self.ram()])[0],
                             -errno.E2BIG)
            b.seq += 1
            self.assertEqual(b.request(token_msg(PRESERVE_FD, b.seq, 1), [dev])[0], -errno.EBUSY)
            self.assertIn("already preserved by VMM vm-a", w.daemon.stderr_text())
            for v in (a, b):
                v.seq += 1
                self.assertEqual(v.request(token_msg(PREPARE_DONE, v.seq, 0)[:8])[0], 0)
            harness.result(c.read_reply())
        self.assertEqual(w.vmm_list()["vm-a"]["devices"], [SLOT])
        self.assertEqual(w.vmm_list()["vm-b"]["devices"], [])
        self.assertCtlOk(w.ctl("abort"))
        self.assertNothingPending()


class TestDevicesDaemonRestart(DeviceWorld, fake_systemd.ServiceManagerTestCase):

    def test_prepared_device_is_picked_up(self):
        """The daemon restarts with the update prepared: who preserved which
        device comes back from update.json, with the VMM's record."""
        w = self.world
        self.running_config(DEVICE_CONFIG)
        self.sysfs.vfio_dev_null(SLOT)
        w.fake("device-files", "1")
        fs = self.start_manager()
        self.start_service(fs, *self.daemon_args)
        w.wait_daemon_ready()
        vmm = RawVmm(w.vmm_socket)
        self.addCleanup(vmm.close)
        self.assertEqual(self.hello(vmm, "vm-dev"), (0, 0))
        prep = self.prepare_with_device(vmm, w.make_kernel_image(config=NEXT_CONFIG))

        w.daemon.kill()
        vmm.expect_hangup()
        self.start_service(fs, *self.daemon_args)
        w.wait_daemon_ready()
        st = w.status()
        self.assertEqual((st["state"], st["update_id"]), ("prepared", prep["update_id"]), st)
        d = self.device()
        self.assertEqual((d["preservable"], d["handover"], d["vm_id"]),
                         (True, "preserved", "vm-dev"), d)
        e = w.vmm_list()["vm-dev"]
        self.assertEqual((e["connected"], e["devices"]), (False, [SLOT]), e)

        again = RawVmm(w.vmm_socket)
        self.addCleanup(again.close)
        self.assertEqual(self.hello(again, "vm-dev"), (0, REPLY_RESUMED))
        # a device preserved before the restart is still accounted for: commit would go on
        self.assertCtlOk(w.ctl("abort"))
        self.assertEqual(again.recv()[0], THAW)
        d = self.device()
        self.assertEqual((d["handover"], d["vm_id"]), ("none", None), d)
        self.assertNothingPending()


if __name__ == "__main__":
    harness.main()
