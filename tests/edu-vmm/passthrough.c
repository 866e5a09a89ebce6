/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "passthrough.h"
#include "vfio-uapi.h"

/* /sys/bus/pci/devices/SLOT/vfio-dev/vfioN names the device cdev. */
static int open_device_cdev(const char *slot)
{
	char dir[256], path[300];
	struct dirent *e;
	DIR *d;
	int fd = -ENOENT;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", slot);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "vfio", 4) == 0) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				fd = -errno;
			break;
		}
	closedir(d);
	return fd;
}

int passthrough_mmap_ram(Passthrough *p)
{
	void *m = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p->ram_fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	p->ram = m;
	return 0;
}

static int guest_ram_create(Passthrough *p)
{
	p->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (p->ram_fd < 0 || ftruncate(p->ram_fd, GUEST_RAM_SIZE) < 0)
		return -errno;
	return passthrough_mmap_ram(p);
}

/*
 * A new IOAS with guest RAM from byte ram_offset on at its fixed IOVA;
 * *step names each ioctl.
 */
static int ioas_map_ram(Passthrough *p, uint64_t ram_offset, const char **step)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.start = ram_offset,
		.length = GUEST_RAM_SIZE - ram_offset,
		.iova = GUEST_RAM_IOVA,
	};

	*step = "allocate an IOAS";
	if (ioctl(p->iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0)
		return -errno;
	p->ioas_id = alloc.out_ioas_id;
	map.ioas_id = p->ioas_id;
	map.fd = p->ram_fd;
	*step = "map guest RAM into the IOAS";
	return ioctl(p->iommufd, IOMMU_IOAS_MAP_FILE, &map) < 0 ? -errno : 0;
}

/* p->device_fd bound to p->iommufd (the first bind opens the device): p->dev_id. */
static int bind_iommufd(Passthrough *p)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = p->iommufd };

	if (ioctl(p->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
		return -errno;
	p->dev_id = bind.out_devid;
	return 0;
}

/* A paging HWPT over the IOAS, and the device attached to it; *step names each ioctl. */
static int hwpt_attach(Passthrough *p, const char **step)
{
	struct iommu_hwpt_alloc hwpt = { .size = sizeof(hwpt) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

	hwpt.dev_id = p->dev_id;
	hwpt.pt_id = p->ioas_id;
	*step = "allocate a HWPT";
	if (ioctl(p->iommufd, IOMMU_HWPT_ALLOC, &hwpt) < 0)
		return -errno;
	p->hwpt_id = hwpt.out_hwpt_id;
	attach.pt_id = p->hwpt_id;
	*step = "attach the device to the HWPT";
	return ioctl(p->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0 ? -errno : 0;
}

int passthrough_build_domain(Passthrough *p, uint64_t ram_offset, const char **ret_step)
{
	int r = ioas_map_ram(p, ram_offset, ret_step);

	return r < 0 ? r : hwpt_attach(p, ret_step);
}

int passthrough_destroy(Passthrough *p, uint32_t id)
{
	struct iommu_destroy destroy = { .size = sizeof(destroy), .id = id };

	return ioctl(p->iommufd, IOMMU_DESTROY, &destroy) < 0 ? -errno : 0;
}

/* BAR0 through the device fd, where its region info says: p->bar0. */
static int map_bar0(Passthrough *p)
{
	struct vfio_region_info bar0 = { .argsz = sizeof(bar0),
					 .index = VFIO_PCI_BAR0_REGION_INDEX };
	void *m;

	if (ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &bar0) < 0)
		return -errno;
	m = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, p->device_fd, bar0.offset);
	if (m == MAP_FAILED)
		return -errno;
	p->bar0 = m;
	return 0;
}

/* Memory decoding and bus mastering on, through the config region; map BAR0. */
static int device_enable(Passthrough *p)
{
	struct vfio_region_info config = { .argsz = sizeof(config),
					   .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t command;

	if (ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &config) < 0)
		return -errno;
	if (pread(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	command |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	return map_bar0(p);
}

int passthrough_mark_for_update(Passthrough *p)
{
	struct iommu_hwpt_lu_set_preserve mark = { .size = sizeof(mark), .hwpt_id = p->hwpt_id };

	return ioctl(p->iommufd, IOMMU_HWPT_LU_SET_PRESERVE, &mark) < 0 ? -errno : 0;
}

int passthrough_open(Passthrough *p, const char *slot, const char **ret_step)
{
	const char *detail; /* ret_step keeps the coarser steps it always named */
	int r;

	*p = (Passthrough){ .iommufd = -1, .device_fd = -1, .ram_fd = -1 };
	*ret_step = "open the VFIO device cdev";
	r = open_device_cdev(slot);
	if (r < 0)
		return r;
	p->device_fd = r;
	*ret_step = "open /dev/iommu";
	p->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (p->iommufd < 0)
		return -errno;
	/*
	 * The IOAS before the bind, the HWPT after it: the objects' IDs
	 * (ioas_id 1, dev_id 2, hwpt_id 3) are in recorded logs.
	 */
	*ret_step = "map guest RAM into an IOAS";
	r = guest_ram_create(p);
	if (r >= 0)
		r = ioas_map_ram(p, 0, &detail);
	if (r < 0)
		return r;
	*ret_step = "attach the device to a HWPT";
	r = bind_iommufd(p);
	if (r >= 0)
		r = hwpt_attach(p, &detail);
	if (r < 0)
		return r;
	*ret_step = "enable the device";
	r = device_enable(p);
	if (r < 0)
		return r;
	*ret_step = "check it is an edu device";
	return edu_check(p->bar0);
}

int passthrough_take_over(Passthrough *p, const char **ret_step)
{
	int r;

	*ret_step = "bind the device to the iommufd";
	r = bind_iommufd(p);
	if (r < 0)
		return r;
	*ret_step = "map the device's BAR0";
	r = map_bar0(p);
	if (r < 0)
		return r;
	*ret_step = "check it is an edu device";
	return edu_check(p->bar0);
}
