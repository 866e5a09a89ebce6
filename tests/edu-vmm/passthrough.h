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

/*
 * Mark p->hwpt_id to be handed over to the next kernel when p->iommufd is
 * preserved in a live update session (IOMMU_HWPT_LU_SET_PRESERVE): 0 or
 * a negative errno.
 */
int passthrough_mark_for_update(Passthrough *p);

/*
 * The steps of passthrough_open() that a VMM repeats when it takes a
 * running device over after a live update, with the iommufd, device fd
 * and memfd it retrieved (set in p): nothing here resets the device or
 * touches its command register. Each returns 0 or a negative errno.
 */

/* Map p->ram_fd at p->ram. */
int passthrough_mmap_ram(Passthrough *p);

/*
 * Take over a running device handed over by a live update, with
 * p->iommufd and p->device_fd as retrieved: bind (no reset, command
 * register untouched), map BAR0, check it is an edu. On failure
 * *ret_step names the step that failed.
 */
int passthrough_take_over(Passthrough *p, const char **ret_step);

/*
 * A new IOAS with p->ram_fd mapped at GUEST_RAM_IOVA, from byte ram_offset
 * on (0 as before the update; anything else is a VMM's mistake), a paging
 * HWPT over it for p->dev_id and the device attached to it: p->ioas_id,
 * p->hwpt_id. On failure *ret_step names the ioctl that failed.
 */
int passthrough_build_domain(Passthrough *p, uint64_t ram_offset, const char **ret_step);

/* IOMMU_DESTROY of an IOAS or HWPT that nothing uses any more. */
int passthrough_destroy(Passthrough *p, uint32_t id);
