# SPDX-License-Identifier: LGPL-2.1-or-later
"""The next kernel's command line, as the kernel (the fake) receives it.

liveupdate=on and kho=on are added where the kernel reads them (before a
"--", after which everything goes to init), a line that turns either off is
refused, and --append adds to the running kernel's line.
"""

import harness


class TestCmdline(harness.WorldTestCase):

    def setUp(self):
        super().setUp()
        self.world.start_daemon()

    def loaded_cmdline(self) -> str:
        fk = self.world.fake_state()
        self.assertIsNotNone(fk["kexec"], fk)
        return fk["kexec"]["cmdline"].rstrip("\0")

    def prepare_abort(self, *args):
        w = self.world
        prep = self.assertCtlOk(w.ctl("prepare", w.make_kernel_image(), *args))
        line = self.loaded_cmdline()
        self.assertEqual(line, prep["cmdline"], "the reply names the line loaded")
        self.assertCtlOk(w.ctl("abort"))
        self.assertNothingPending()
        return line

    def test_explicit_cmdline(self):
        line = self.prepare_abort("--cmdline", "console=ttyS0 root=/dev/vda1")
        words = line.split()
        self.assertEqual(words[:2], ["console=ttyS0", "root=/dev/vda1"], line)
        self.assertIn("liveupdate=on", words, line)
        self.assertIn("kho=on", words, line)

    def test_switches_before_init_args(self):
        line = self.prepare_abort("--cmdline", "console=ttyS0 -- single init-arg")
        kernel_part = line.split(" -- ")[0].split()
        self.assertIn("liveupdate=on", kernel_part, f"must be a kernel argument: {line}")
        self.assertIn("kho=on", kernel_part, f"must be a kernel argument: {line}")
        self.assertTrue(line.endswith("-- single init-arg"), line)

    def test_no_duplicates(self):
        line = self.prepare_abort("--cmdline", "quiet liveupdate=on kho=1")
        words = line.split()
        self.assertEqual(words.count("liveupdate=on"), 1, line)
        self.assertNotIn("kho=on", words, f"kho=1 already turns it on: {line}")

    def test_append(self):
        line = self.prepare_abort("--append", "extra.option=7")
        self.assertIn("extra.option=7", line.split(), line)
        self.assertIn("liveupdate=on", line.split(), line)

    def test_switched_off_refused(self):
        w = self.world
        for bad in ("liveupdate=off", "kho=0 console=ttyS0"):
            with self.subTest(cmdline=bad):
                r = w.ctl("prepare", w.make_kernel_image(), "--cmdline", bad)
                self.assertCtlError(r, "invalid-request")
                self.assertNothingPending()
                self.assertIdle()


if __name__ == "__main__":
    harness.main()
