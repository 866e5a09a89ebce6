/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kconfig.h"
#include "kexec.h"
#include "macro.h"
#include "next-kernel.h"

/*
 * The x86 boot protocol (Documentation/arch/x86/boot.rst): in a bzImage
 * (kexec_image_check()), since 2.00 at 0x20e the offset, less 0x200, of a
 * NUL-terminated version string: "RELEASE (builder) #N ...".
 */
#define BZIMAGE_VERSION_PTR_OFFSET 0x20e
#define BZIMAGE_SETUP_BASE 0x200

/* Without these the handed-over memory is not found again. */
static const char *const required_options[] = {
	"CONFIG_KEXEC_HANDOVER",
	"CONFIG_LIVEUPDATE",
	"CONFIG_LIVEUPDATE_MEMFD", /* guest RAM is memfds */
};

int next_kernel_release(int kernel_fd, char ret[static NEXT_KERNEL_RELEASE_MAX])
{
	char version[NEXT_KERNEL_RELEASE_MAX + 1];
	uint8_t ptr[2];
	uint16_t off;
	ssize_t n;
	size_t len;
	int r;

	r = kexec_image_check(kernel_fd);
	if (r < 0)
		return r;

	n = pread(kernel_fd, ptr, sizeof(ptr), BZIMAGE_VERSION_PTR_OFFSET);
	if (n < 0)
		return negative_errno();
	off = (uint16_t)(ptr[0] | ptr[1] << 8); /* little endian, whatever the host */
	if (n != sizeof(ptr) || off == 0)
		return -ENODATA;

	n = pread(kernel_fd, version, sizeof(version) - 1, BZIMAGE_SETUP_BASE + (off_t)off);
	if (n < 0)
		return negative_errno();
	version[n] = '\0';
	/* the release is the first word, and must end (space or NUL) within what was read */
	len = strcspn(version, " ");
	if (len == 0 || len >= (size_t)n)
		return -ENODATA;
	for (size_t i = 0; i < len; i++)
		if (version[i] < 0x21 || version[i] > 0x7e || version[i] == '/')
			return -ENODATA;
	memcpy(ret, version, len);
	ret[len] = '\0';
	return 0;
}

static int config_in(const char *dir, size_t dir_len, const char *release, char **ret_path)
{
	_cleanup_free_ char *p = NULL;

	if (asprintf(&p, "%.*s/config-%s", (int)dir_len, dir, release) < 0)
		return -ENOMEM;
	if (access(p, R_OK) < 0)
		return negative_errno();
	*ret_path = TAKE_PTR(p);
	return 0;
}

int next_kernel_find_config(const char *image_path, const char *release, const char *boot_dir,
			    char **ret_path)
{
	const char *slash = strrchr(image_path, '/');
	int r;

	if (slash)
		r = config_in(image_path, slash == image_path ? 1 : (size_t)(slash - image_path),
			      release, ret_path);
	else
		r = config_in(".", 1, release, ret_path);
	if (r != -ENOENT)
		return r;
	boot_dir = boot_dir ?: "/boot";
	return config_in(boot_dir, strlen(boot_dir), release, ret_path);
}

int next_kernel_check_config(const char *config_path, char *missing, size_t size)
{
	return kconfig_missing(config_path, required_options, ARRAY_SIZE(required_options), missing,
			       size);
}
