/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The subset of the iommufd and VFIO device cdev ABI (include/uapi/linux/
 * iommufd.h and vfio.h of Linux 7.3) that a VMM needs to pass a PCI device
 * through: the build machines' kernel headers (6.1) predate the device cdev
 * and IOMMU_IOAS_MAP_FILE. Names and layouts are the kernel's; the sizes
 * are checked below. IOMMU_HWPT_LU_SET_PRESERVE is the project's kernel's
 * own (its iommufd live update handler), not upstream's.
 */

#include <linux/ioctl.h>
#include <stdint.h>

#define IOMMUFD_TYPE ';'
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, 0x89)
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f)
#define IOMMU_HWPT_LU_SET_PRESERVE _IO(IOMMUFD_TYPE, 0x96)

enum {
	IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
	IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
	IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_destroy {
	uint32_t size;
	uint32_t id;
};

struct iommu_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

struct iommu_ioas_map_file {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	int32_t fd;
	uint64_t start;
	uint64_t length;
	uint64_t iova;
};

struct iommu_hwpt_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pt_id;
	uint32_t out_hwpt_id;
	uint32_t reserved;
	uint32_t data_type;
	uint32_t data_len;
	uint64_t data_uptr;
	uint32_t fault_id;
	uint32_t reserved2;
};

/* Mark a paging HWPT to be handed over when its iommufd is preserved (flags 0). */
struct iommu_hwpt_lu_set_preserve {
	uint32_t size;
	uint32_t flags;
	uint32_t hwpt_id;
	uint32_t __reserved;
};

#define VFIO_TYPE ';'
#define VFIO_BASE 100
#define VFIO_DEVICE_GET_REGION_INFO _IO(VFIO_TYPE, VFIO_BASE + 8)
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

enum {
	VFIO_PCI_BAR0_REGION_INDEX = 0,
	VFIO_PCI_CONFIG_REGION_INDEX = 7,
};

struct vfio_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
};

struct vfio_device_bind_iommufd {
	uint32_t argsz;
	uint32_t flags;
	int32_t iommufd;
	uint32_t out_devid;
	uint64_t token_uuid_ptr;
};

struct vfio_device_attach_iommufd_pt {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id;
	uint32_t pasid;
};

_Static_assert(sizeof(struct iommu_destroy) == 8, "iommu_destroy");
_Static_assert(sizeof(struct iommu_ioas_alloc) == 12, "iommu_ioas_alloc");
_Static_assert(sizeof(struct iommu_ioas_map_file) == 40, "iommu_ioas_map_file");
_Static_assert(sizeof(struct iommu_hwpt_alloc) == 48, "iommu_hwpt_alloc");
_Static_assert(sizeof(struct iommu_hwpt_lu_set_preserve) == 16, "iommu_hwpt_lu_set_preserve");
_Static_assert(sizeof(struct vfio_region_info) == 32, "vfio_region_info");
_Static_assert(sizeof(struct vfio_device_bind_iommufd) == 24, "vfio_device_bind_iommufd");
_Static_assert(sizeof(struct vfio_device_attach_iommufd_pt) == 16, "vfio_device_attach_iommufd_pt");
