# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A device passed through to a VM (QEMU's edu, behind the emulated VT-d,
# bound to vfio-pci) cannot be carried over by this kernel: status shows
# it, prepare is refused with device-not-preservable naming it, and nothing
# changes. Once it is unbound, the same update prepares.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT

driver_of() { basename "$(readlink "$1/driver")" 2>/dev/null; }

stage1() {
	start_daemon
	start_vmms 2
	wait_vmms 2 running
	e2e "vmms running"

	check edu-present [ -d "$EDU" ]
	e2e "edu slot=$E2E_EDU_SLOT id=$(cat "$EDU/vendor"):$(cat "$EDU/device")" \
		"group=$(basename "$(readlink "$EDU/iommu_group")")"
	echo vfio-pci >"$EDU/driver_override"
	echo "$E2E_EDU_SLOT" >/sys/bus/pci/drivers_probe
	check edu-bound [ "$(driver_of "$EDU")" = vfio-pci ]
	# the device cdev a VMM would open
	check vfio-cdev [ -c "/dev/vfio/devices/$(ls "$EDU/vfio-dev")" ]

	e2e "status $(liveupdatectl --json status)"
	liveupdatectl status | awk '/^Devices:/ { d = 1; print "E2E status-text " $0; next }
		d && /^  / { print "E2E status-text " $0; next } { d = 0 }'
	out=$(liveupdatectl --json prepare /mnt/boot/bzImage --initrd /mnt/boot/initrd.img \
		--append "lu_stage=2" 2>&1)
	rc=$?
	e2e "prepare rc=$rc $out"
	check prepare-refused [ $rc = 1 ]
	e2e "status-after $(liveupdatectl --json status)"
	check edu-still-bound [ "$(driver_of "$EDU")" = vfio-pci ]

	verify_vmms vm1 vm2
	e2e "vmms verified"

	# Nothing is held against a later update: unbound, the device is no
	# longer passed through and the same update prepares.
	echo "$E2E_EDU_SLOT" >"$EDU/driver/unbind"
	echo >"$EDU/driver_override"
	check prepare-unbound liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	check abort liveupdatectl abort
}
