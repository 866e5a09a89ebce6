# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The kernel's own selftests of what the project's patches touch, on the
# project's kernel (the kernel/build --selftests variant): iommufd (against
# its mock IOMMU driver) and liveupdate, in one boot; luo_kexec_simple and
# luo_multi_session across a real kexec, which the daemon does, with no VMM,
# while the selftests hold their sessions. Each program's TAP output goes
# to the console; "E2E selftest NAME rc=N" ends it.

SELFTESTS=/selftests

selftest() {
	local name=$1
	shift
	e2e "selftest-begin $name"
	# busybox sh has no PIPESTATUS: the status goes through a file
	{
		"$SELFTESTS/$name" "$@" 2>&1
		echo $? >/run/selftest.rc
	} | prefix "selftest $name"
	e2e "selftest $name rc=$(cat /run/selftest.rc)"
}

stage1() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	# iommufd's huge page tests map up to 128 MiB with MAP_HUGETLB
	echo 80 >/proc/sys/vm/nr_hugepages
	selftest liveupdate
	selftest iommufd
	# each leaves a child holding its sessions, and asks for a kexec
	selftest luo_kexec_simple -s 1
	selftest luo_multi_session -s 1
	start_daemon
	check prepare liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	e2e "commit"
	liveupdatectl commit
	fail "liveupdatectl commit returned $?: no kexec happened"
}

stage2() {
	# before the daemon opens /dev/liveupdate: one opener at a time
	selftest luo_kexec_simple -s 2
	selftest luo_multi_session -s 2
	start_daemon
	check daemon-idle wait_for 30 "the daemon to be idle" \
		sh -c 'liveupdatectl status --json | grep -q "\"state\":\"idle\""'
}
