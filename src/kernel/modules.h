/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Kernel modules that must be loaded before /dev/liveupdate is first opened
 * after the kexec: that open deserializes every incoming file, and a file
 * whose handler is not registered yet makes it fail with EIO for good.
 * Loading goes through libkmod (dependencies, aliases, built-ins).
 */

#include <stddef.h>

/*
 * Load each module by name or alias. Built-in or already loaded is
 * success. modules_dir NULL means /lib/modules/$(uname -r). On failure
 * *ret_failed (if given) points at the name that failed.
 */
int modules_load(const char *modules_dir, char *const *names, size_t n, const char **ret_failed);

/*
 * The module whose LUO handler preserves this kind of fd, or NULL when the
 * handler is built into the kernel (memfd). -EOPNOTSUPP for fd kinds no
 * handler is known for; the kernel has the last word at PRESERVE_FD.
 */
int modules_for_fd(int fd, const char **ret);
