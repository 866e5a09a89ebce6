/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What can be known about the next kernel before jumping into it. A kernel
 * built without LUO boots fine from kexec_file_load, but the memory the old
 * one handed over is then ordinary free memory: every guest's RAM is lost.
 * Nothing in the image itself says whether it has LUO, so the daemon reads
 * the release from the image's boot header and that release's build config
 * (config-RELEASE, which Debian and "make install" put beside the image in
 * /boot), and refuses an update the next kernel could not receive.
 */

#include <stddef.h>

#define NEXT_KERNEL_RELEASE_MAX 64

/*
 * The release ("7.3.0-rc7") the x86 boot header of kernel_fd names.
 * kexec_image_check()'s error when it is no bzImage (-ENOEXEC, -EISDIR,
 * ...); -ENODATA when the header names no version.
 */
int next_kernel_release(int kernel_fd, char ret[static NEXT_KERNEL_RELEASE_MAX]);

/*
 * The config of release: config-RELEASE in the directory of image_path, then
 * in boot_dir (NULL: /boot). -ENOENT when there is none.
 */
int next_kernel_find_config(const char *image_path, const char *release, const char *boot_dir,
			    char **ret_path);

/*
 * Check a kernel config for what receiving a live update takes. Writes the
 * missing options, comma-separated, to missing. Returns how many are
 * missing (0: it can receive one), or a negative errno.
 */
int next_kernel_check_config(const char *config_path, char *missing, size_t size);
