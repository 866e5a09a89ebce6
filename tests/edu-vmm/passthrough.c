/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "passthrough.h"
#include "vfio-uapi.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

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

static int guest_ram_map(Passthrough *p)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.start = 0,
		.length = GUEST_RAM_SIZE,
		.iova = GUEST_RAM_IOVA,
	};

	p->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (p->ram_fd < 0 || ftruncate(p->ram_fd, GUEST_RAM_SIZE) < 0)
		return -errno;
	p->ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p->ram_fd, 0);
	if (p->ram == MAP_FAILED)
		return -errno;
	if (ioctl(p->iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0)
		return -errno;
	p->ioas_id = alloc.out_ioas_id;
	map.ioas_id = p->ioas_id;
	map.fd = p->ram_fd;
	return ioctl(p->iommufd, IOMMU_IOAS_MAP_FILE, &map) < 0 ? -errno : 0;
}

static int device_attach(Passthrough *p)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = p->iommufd };
	struct iommu_hwpt_alloc hwpt = { .size = sizeof(hwpt) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

	if (ioctl(p->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
		return -errno;
	p->dev_id = bind.out_devid;
	hwpt.dev_id = p->dev_id;
	hwpt.pt_id = p->ioas_id;
	if (ioctl(p->iommufd, IOMMU_HWPT_ALLOC, &hwpt) < 0)
		return -errno;
	p->hwpt_id = hwpt.out_hwpt_id;
	attach.pt_id = p->hwpt_id;
	return ioctl(p->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0 ? -errno : 0;
}

/* Memory decoding and bus mastering on, through the config region; map BAR0. */
static int device_enable(Passthrough *p)
{
	struct vfio_region_info config = { .argsz = sizeof(config),
					   .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar0 = { .argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t command;
	void *m;

	if (ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &config) < 0 ||
	    ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &bar0) < 0)
		return -errno;
	if (pread(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	command |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	m = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, p->device_fd, bar0.offset);
	if (m == MAP_FAILED)
		return -errno;
	p->bar0 = m;
	return 0;
}

int passthrough_open(Passthrough *p, const char *slot, const char **ret_step)
{
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
	*ret_step = "map guest RAM into an IOAS";
	r = guest_ram_map(p);
	if (r < 0)
		return r;
	*ret_step = "attach the device to a HWPT";
	r = device_attach(p);
	if (r < 0)
		return r;
	*ret_step = "enable the device";
	r = device_enable(p);
	if (r < 0)
		return r;
	*ret_step = "check it is an edu device";
	return edu_check(p->bar0);
}
