# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The real kernel refuses the kexec: with fail_luo_freeze (kernel/patches
# 0001) the freeze of a preserved file fails inside reboot(), the kernel
# rolls the earlier freezes back and reboot() returns EBUSY. The daemon must
# abort with reboot-failed and thaw every VM with its memory intact; and as
# the kernel kept every session consistent, a second update then goes
# through the real kexec and restores every VM.

FAIL=/sys/kernel/debug/fail_luo_freeze

stage1() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	check fault-injection [ -d $FAIL ]
	start_daemon
	start_vmms 3
	wait_vmms 3 running
	e2e "vmms running"
	check prepare liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"

	# The next freeze of a preserved file fails, once, quietly.
	echo 0 >$FAIL/verbose
	echo 100 >$FAIL/probability
	echo 1 >$FAIL/times
	e2e "commit"
	out=$(liveupdatectl --json commit 2>&1)
	rc=$?
	# the commit's answer, then the outcome event: that one says why
	e2e "commit refused rc=$rc $(echo "$out" | grep '"event":"outcome"')"
	check commit-refused [ $rc = 1 ]
	# the injected failure was used up inside reboot(): the kernel said no
	check fault-fired [ "$(cat $FAIL/times)" = 0 ]
	e2e "status $(liveupdatectl status --json)"
	e2e "report $(liveupdatectl report --json)"
	wait_vmms 3 thawed
	verify_vmms vm1 vm2 vm3
	e2e "vmms verified"

	# The kernel rolled back cleanly: the next update goes through.
	echo 0 >$FAIL/probability
	check prepare-again liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	e2e "commit again"
	liveupdatectl commit
	fail "liveupdatectl commit returned $?: no kexec happened"
}

stage2() {
	start_daemon
	start_vmms 3
	wait_vmms 3 resumed
	e2e "vmms resumed"
	e2e "report $(liveupdatectl report --json)"
	e2e "status $(liveupdatectl status --json)"
}
