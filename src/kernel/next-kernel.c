/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

DEFINE_FREEP(FILE, fclose)

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

int next_kernel_find_config(const char *image_path, const char *release, char **ret_path)
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
	return config_in("/boot", strlen("/boot"), release, ret_path);
}

int next_kernel_check_config(const char *config_path, char *missing, size_t size)
{
	_cleanup_(fclosep) FILE *f = fopen(config_path, "re");
	bool have[ARRAY_SIZE(required_options)] = {};
	bool line_start = true;
	char line[512];
	int n_missing = 0;
	size_t used = 0;

	if (!f)
		return negative_errno();
	while (fgets(line, sizeof(line), f)) {
		/* the rest of a long line (a string value) is not an option */
		bool at_start = line_start;

		line_start = strchr(line, '\n') != NULL;
		if (!at_start)
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(required_options); i++) {
			size_t len = strlen(required_options[i]);

			if (strncmp(line, required_options[i], len) == 0 &&
			    strncmp(line + len, "=y\n", 3) == 0)
				have[i] = true;
		}
	}
	if (ferror(f))
		return -EIO;

	if (size > 0)
		missing[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(required_options); i++) {
		int w;

		if (have[i])
			continue;
		n_missing++;
		if (used >= size)
			continue;
		w = snprintf(missing + used, size - used, "%s%s", used ? ", " : "", required_options[i]);
		used += w > 0 ? (size_t)w : 0;
	}
	return n_missing;
}
