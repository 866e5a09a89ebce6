/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "macro.h"
#include "vfio-device.h"

static int read_link(const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size - 1);

	if (n < 0)
		return errno == ENOENT || errno == EINVAL ? -ENODEV : negative_errno();
	if ((size_t)n >= size - 1)
		return -ENODEV; /* no sysfs link is that long */
	buf[n] = '\0';
	return 0;
}

/* The char device has no dev/char link: not one sysfs knows, unless sysfs itself is missing. */
static int no_char_link(const char *sysfs_dir)
{
	char dir[4096];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/dev/char", sysfs_dir ?: "/sys") >= sizeof(dir))
		return -ENAMETOOLONG;
	return access(dir, R_OK | X_OK) < 0 ? negative_errno() : -ENODEV;
}

int vfio_device_slot(int fd, const char *sysfs_dir, PciSlot ret)
{
	char path[4096], target[4096];
	const char *base;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISCHR(st.st_mode))
		return -ENODEV;

	/* ../../devices/pci0000:00/0000:00:07.0/vfio-dev/vfio0 */
	if ((size_t)snprintf(path, sizeof(path), "%s/dev/char/%u:%u", sysfs_dir ?: "/sys",
			     major(st.st_rdev), minor(st.st_rdev)) >= sizeof(path))
		return -ENAMETOOLONG;
	r = read_link(path, target, sizeof(target));
	if (r == -ENODEV)
		return no_char_link(sysfs_dir);
	if (r < 0)
		return r;
	if (!strstr(target, "/vfio-dev/vfio"))
		return -ENODEV;

	/* ../../../0000:00:07.0 */
	if ((size_t)snprintf(path + strlen(path), sizeof(path) - strlen(path), "/device") >=
	    sizeof(path) - strlen(path))
		return -ENODEV;
	r = read_link(path, target, sizeof(target));
	if (r < 0)
		return r;
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (!pci_slot_valid(base))
		return -ENODEV;
	strcpy(ret, base); /* pci_slot_valid() bounds it */
	return 0;
}
