/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The next kernel's command line. By default it is the running one, minus
 * the words only a boot loader means (BOOT_IMAGE=, initrd=), plus what the
 * operator appends, plus what a live update needs in the next kernel too:
 * liveupdate=on, and kho=on (harmless where the kernel already defaults
 * KHO on). A command line that turns either off is refused, not "fixed".
 */

#define CMDLINE_MAX 2048 /* x86 COMMAND_LINE_SIZE, NUL included */

/* Read the running kernel's command line (path: /proc/cmdline unless given). */
int cmdline_read_running(const char *path, char **ret);

/* base: the line to start from; append may be NULL. */
int cmdline_build(const char *base, const char *append, char **ret);
