/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Loading the next kernel and jumping into it. Live update needs
 * kexec_file_load(2): Kexec HandOver only works with it. Loading reads and
 * verifies the image, which is slow: it belongs to prepare, never to the
 * blackout. The jump, reboot(LINUX_REBOOT_CMD_KEXEC), freezes every
 * preserved file and does not return on success; on failure the kernel has
 * rolled the freeze back and the update can be cancelled cleanly.
 */

#include <stdbool.h>

#define KEXEC_CMDLINE_MAX 2048 /* x86 boot protocol cmdline_size, NUL included */

/* Check that fd holds something that can be a bzImage, before asking the kernel. */
int kexec_image_check(int kernel_fd);

/* initrd_fd < 0 loads without an initramfs. */
int kexec_load(int kernel_fd, int initrd_fd, const char *cmdline);
int kexec_unload(void);
/*
 * Is an image loaded for kexec (/sys/kernel/kexec_loaded)? 1 or 0, or a
 * negative errno when the kernel does not say (no sysfs, no CONFIG_KEXEC).
 */
int kexec_loaded(void);

/* sync(2), then jump. Returns only on failure, with a negative errno. */
int kexec_reboot(void);
