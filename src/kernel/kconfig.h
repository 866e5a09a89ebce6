/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A kernel's build config (config-RELEASE, the .config "make install" and
 * Debian put in /boot): what the daemon knows of a kernel's features
 * before it runs, or when the running one does not say.
 */

#include <stddef.h>

#define KCONFIG_OPTIONS_MAX 16

/*
 * Which of options (at most KCONFIG_OPTIONS_MAX) config_path does not set
 * to y: they go to missing, comma-separated, as far as size allows.
 * Returns how many are missing (0: all set), or a negative errno
 * (-ENOENT: no such file).
 */
int kconfig_missing(const char *config_path, const char *const *options, size_t n, char *missing,
		    size_t size);
