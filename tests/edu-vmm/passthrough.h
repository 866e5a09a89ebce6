/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * QEMU's edu device passed through the way a VMM does it with the 7.3
 * uAPI: its VFIO device cdev bound to an iommufd, a memfd "guest RAM"
 * mapped into an IOAS with IOMMU_IOAS_MAP_FILE at a fixed IOVA, the device
 * attached to an explicit paging HWPT over that IOAS, memory decoding and
 * bus mastering on, BAR0 mapped and its ID checked.
 */

#include <stdint.h>

#define GUEST_RAM_SIZE (64u << 10)
#define GUEST_RAM_IOVA 0x100000u

typedef struct Passthrough {
	int iommufd, device_fd, ram_fd;
	uint8_t *ram; /* GUEST_RAM_SIZE bytes, seen by the device at GUEST_RAM_IOVA */
	volatile uint8_t *bar0;
	uint32_t dev_id, ioas_id, hwpt_id;
} Passthrough;

/*
 * Set up slot ("0000:00:07.0", bound to vfio-pci). On failure returns a
 * negative errno and *ret_step names the step that failed.
 */
int passthrough_open(Passthrough *p, const char *slot, const char **ret_step);
