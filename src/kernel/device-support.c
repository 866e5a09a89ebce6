/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "device-support.h"
#include "kconfig.h"
#include "macro.h"

/* kernel/patches: PCI, IOMMU core, VT-d, iommufd and vfio-pci hand-over. */
static const char *const device_options[] = {
	"CONFIG_PCI_LIVEUPDATE",
	"CONFIG_IOMMU_LIVEUPDATE",
	"CONFIG_INTEL_IOMMU_LIVEUPDATE",
	"CONFIG_IOMMUFD_LIVEUPDATE",
	"CONFIG_VFIO_PCI_LIVEUPDATE",
};

void device_support_done(DeviceSupport *s)
{
	free(s->config);
	*s = (DeviceSupport){};
}

int device_support_read(DeviceSupport *s, const char *release, const char *config_path)
{
	int r;

	device_support_done(s);
	snprintf(s->release, sizeof(s->release), "%s", release);
	s->config = strdup(config_path);
	if (!s->config)
		return -ENOMEM;
	r = kconfig_missing(config_path, device_options, ARRAY_SIZE(device_options), s->missing,
			    sizeof(s->missing));
	if (r < 0)
		s->error = r;
	else
		s->n_missing = r;
	return 0;
}

int device_support_running(DeviceSupport *s, const char *boot_dir)
{
	_cleanup_free_ char *path = NULL;
	struct utsname u;

	if (uname(&u) < 0)
		return negative_errno();
	if (asprintf(&path, "%s/config-%s", boot_dir ?: "/boot", u.release) < 0)
		return -ENOMEM;
	return device_support_read(s, u.release, path);
}

bool device_support_ok(const DeviceSupport *s)
{
	return s->config && s->error == 0 && s->n_missing == 0;
}

void device_support_explain(const DeviceSupport *s, const char *which, char *buf, size_t size)
{
	if (size == 0)
		return;
	buf[0] = '\0';
	if (device_support_ok(s))
		return;
	if (!s->config)
		snprintf(buf, size, "The %s kernel's support for carrying devices over is unknown",
			 which);
	else if (s->error == -ENOENT)
		snprintf(buf, size,
			 "The %s kernel (linux %s) has no %s to tell whether it can carry devices "
			 "over", which, s->release, s->config);
	else if (s->error < 0)
		snprintf(buf, size, "The %s kernel's config %s cannot be read: %s", which,
			 s->config, strerror(-s->error));
	else
		snprintf(buf, size, "The %s kernel (linux %s) lacks %s in %s", which, s->release,
			 s->missing, s->config);
}
