/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the hand-over programs ask of the kernel they run on, besides LUO
 * and the device's own files: the next kernel loaded, and what it shows
 * of the update through /proc and sysfs.
 */

/*
 * Load image (and initrd, when given) with kexec_file_load, with the
 * running kernel's command line plus append: 0 or a negative errno.
 */
int load_next_kernel(const char *image, const char *initrd, const char *append);

/* A counter of /proc/vmstat, exact now; -1 when unreadable. */
long vmstat(const char *name);

/*
 * Bus mastering of slot as the PCI core sees it (its config space in
 * sysfs, not the device's VFIO file), as a JSON value: "true", "false",
 * or "null" when unreadable.
 */
const char *bus_master_json(const char *slot);

/*
 * Turn slot's memory decoding on through sysfs, leaving bus mastering as it
 * is (a device the kernel made safe has neither): whether it was on, or a
 * negative errno.
 */
int memory_decoding_on(const char *slot);
