# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A device passed through to a VM cannot be carried over by this kernel yet:
# QEMU's edu, behind the emulated VT-d, bound to vfio-pci and DMAing into a
# memfd "guest RAM" through an iommufd IOAS (liveupdate-edu-vmm). status
# shows it, prepare is refused with device-not-preservable naming it, and
# nothing changes: the device still DMAs through its IOVA, the VMs' memory
# is intact. Once it is released and unbound, the same update prepares.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT

# dma_rounds N: the edu VMM has reported N DMA rounds or more.
dma_rounds() { [ "$(grep -c '"event":"dma"' /run/vmm/edu.log)" -ge "$1" ]; }

stage1() {
	start_daemon
	start_vmms 2
	wait_vmms 2 running
	e2e "vmms running"

	bind_edu_to_vfio "$EDU"
	e2e "edu slot=$E2E_EDU_SLOT id=$(cat "$EDU/vendor"):$(cat "$EDU/device")" \
		"group=$(basename "$(readlink "$EDU/iommu_group")")"
	start_process edu liveupdate-edu-vmm --slot "$E2E_EDU_SLOT"
	wait_event edu dma

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

	# The refusal touched nothing: the device still DMAs through its IOVA.
	kill -USR1 "$(vmm_pid edu)"
	wait_for "$E2E_TIMEOUT" "a second DMA round" dma_rounds 2
	verify_vmms vm1 vm2
	e2e "vmms verified"

	# Nothing is held against a later update: with its VMM gone and the
	# device unbound, the same update prepares.
	kill -TERM "$(vmm_pid edu)"
	wait_event edu exited
	echo "$E2E_EDU_SLOT" >"$EDU/driver/unbind"
	echo >"$EDU/driver_override"
	check prepare-unbound liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	check abort liveupdatectl abort
}
