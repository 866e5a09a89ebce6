# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 4: prepare with a kernel image that cannot be used.

A missing file, a file without the bzImage magic and a kernel that could
not receive a live update (no LUO in its config) must all fail prepare
with kernel-image and a message naming the file, before any VMM hears of
the update: no session, no kexec image, the daemon idle.
"""

import os

import harness


class TestBadKernel(harness.WorldTestCase):

    def setUp(self):
        super().setUp()
        w = self.world
        w.start_daemon()
        self.vmm = w.start_vmm("vm-a")
        self.boot = w.fake_state()["boot"]

    def assertUntouched(self):
        w = self.world
        fk = self.assertNothingPending()
        self.assertEqual(fk["boot"], self.boot, fk)
        self.assertIdle(last_outcome=None)
        self.assertIsNone(w.report(), "a refused prepare leaves no report")
        # the VMM never heard of an update
        self.assertEqual(self.vmm.names(), ["registered", "running"], self.vmm.events)
        self.assertEqual(w.vmm_list()["vm-a"]["state"], "registered")

    def test_missing_file(self):
        w = self.world
        path = w.path("no-such-bzImage")
        # the daemon's own answer (the CLI checks the file first, see below)
        reply = w.call("prepare", {"kernel": path})
        self.assertFalse(reply["ok"], reply)
        self.assertEqual(reply["error"]["code"], "kernel-image", reply)
        self.assertIn(path, reply["error"]["message"], reply)
        self.assertEqual(reply["error"].get("errno"), "ENOENT", reply)
        self.assertUntouched()

        # liveupdatectl refuses a local file that does not exist: usage error (2)
        r = w.ctl("prepare", path)
        self.assertEqual(r.rc, harness.CTL_USAGE, str(r))
        self.assertIn("no-such-bzImage", r.stderr, str(r))
        self.assertUntouched()

    def test_no_magic(self):
        w = self.world
        image = w.make_kernel_image("not-a-kernel", magic=False)
        r = w.ctl("prepare", image)
        err = self.assertCtlError(r, "kernel-image", rc=harness.CTL_FAILED)
        self.assertIn(image, err["message"], err)
        self.assertIn("kernel", err["message"].lower(), err)
        self.assertIn("not-a-kernel", r.stderr, "the error is also said on stderr")
        self.assertUntouched()

        # a directory is no kernel either
        os.mkdir(w.path("a-dir"))
        reply = w.call("prepare", {"kernel": w.path("a-dir")})
        self.assertFalse(reply["ok"], reply)
        self.assertEqual(reply["error"]["code"], "kernel-image", reply)
        self.assertUntouched()

        # and a good image right after works: nothing was left half-done
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image()))
        self.assertEqual(prep["vmms"], 1, prep)
        self.assertCtlOk(w.ctl("abort"))
        self.assertThawedIntact(self.vmm)
        self.assertNothingPending()

    def test_next_kernel_without_luo(self):
        """A kernel without LUO would boot and find no guest memory: refused
        before any VMM hears of the update."""
        w = self.world
        cases = [
            ("no-luo", dict(config="CONFIG_KEXEC_HANDOVER=y\n# CONFIG_LIVEUPDATE is not set\n"
                                   "CONFIG_LIVEUPDATE_MEMFD=y\n"),
             "EOPNOTSUPP", "lacks CONFIG_LIVEUPDATE,"),
            ("no-memfd", dict(config="CONFIG_KEXEC_HANDOVER=y\nCONFIG_LIVEUPDATE=y\n"
                                     "CONFIG_LIVEUPDATE_MEMFD=m\n"),
             "EOPNOTSUPP", "lacks CONFIG_LIVEUPDATE_MEMFD, so"),
            ("no-config", dict(release="7.3.0-unknown", config=None),
             "ENOENT", "no config-7.3.0-unknown beside it or in /boot"),
            ("no-release", dict(release=None), "ENODATA", "names no kernel release"),
        ]
        for name, kw, errno_name, words in cases:
            with self.subTest(name):
                os.mkdir(w.path(name))
                image = w.make_kernel_image(os.path.join(name, "bzImage"), **kw)
                reply = w.call("prepare", {"kernel": image})
                self.assertFalse(reply["ok"], reply)
                self.assertEqual(reply["error"]["code"], "kernel-image", reply)
                self.assertEqual(reply["error"].get("errno"), errno_name, reply)
                self.assertIn(words, reply["error"]["message"], reply)
                self.assertIn(image, reply["error"]["message"], reply)
                self.assertUntouched()

        # the same directory with a config that has it: prepared
        good = w.make_kernel_image(os.path.join("no-luo", "bzImage"))
        self.assertCtlOk(w.ctl("prepare", good))
        self.assertCtlOk(w.ctl("abort"))
        self.assertThawedIntact(self.vmm)
        self.assertNothingPending()


if __name__ == "__main__":
    harness.main()
