/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Can a kernel carry passed-through devices across a live update? The
 * running one must preserve them (the iommufd and vfio-pci LUO handlers
 * and the IOMMU's hand-over), the next one must take them over (adopt the
 * IOMMU tables, reserve the devices for vfio-pci, retrieve the iommufd and
 * the device files). Both need the same options, and, as for the next
 * kernel's LUO (next-kernel.h), the build config is where to read them:
 * the running kernel's is config-$(uname -r) in /boot.
 */

#include <stdbool.h>
#include <stddef.h>

#include "next-kernel.h"

#define DEVICE_SUPPORT_MISSING_MAX 192

typedef struct DeviceSupport {
	char release[NEXT_KERNEL_RELEASE_MAX];
	char *config; /* the config read, or looked for */
	int error;    /* reading it failed: negative errno (-ENOENT: none); else 0 */
	int n_missing;
	char missing[DEVICE_SUPPORT_MISSING_MAX]; /* the options not =y, comma-separated */
} DeviceSupport;

void device_support_done(DeviceSupport *s);

/* Check config_path, the config of release. -ENOMEM only; a bad config is in *s. */
int device_support_read(DeviceSupport *s, const char *release, const char *config_path);
/* The running kernel: boot_dir (NULL: /boot)/config-$(uname -r). */
int device_support_running(DeviceSupport *s, const char *boot_dir);

bool device_support_ok(const DeviceSupport *s);

/*
 * Why not, as a sentence for messages and status: "The running kernel
 * (linux 6.1.0) lacks CONFIG_IOMMUFD_LIVEUPDATE in /boot/config-6.1.0".
 * which is "running" or "next". Empty when it can.
 */
void device_support_explain(const DeviceSupport *s, const char *which, char *buf, size_t size);
