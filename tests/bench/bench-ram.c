/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench-ram.h"
#include "macro.h"

#define TAG_SIZE 64

static void tag(char buf[static TAG_SIZE], const char *vm_id, unsigned index)
{
	memset(buf, 0, TAG_SIZE);
	snprintf(buf, TAG_SIZE, "bench-ram %s %u", vm_id, index);
}

int bench_ram_create(const char *vm_id, unsigned index, size_t size)
{
	_cleanup_close_ int fd = -1;
	char t[TAG_SIZE];

	if (size < TAG_SIZE)
		return -EINVAL;
	fd = memfd_create("bench-ram", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return negative_errno();
	tag(t, vm_id, index);
	if (pwrite(fd, t, TAG_SIZE, 0) != TAG_SIZE)
		return -EIO;
	return TAKE_FD(fd);
}

int bench_ram_check(int fd, const char *vm_id, unsigned index)
{
	char want[TAG_SIZE], got[TAG_SIZE];
	ssize_t n;

	tag(want, vm_id, index);
	n = pread(fd, got, TAG_SIZE, 0);
	if (n < 0)
		return negative_errno();
	return n == TAG_SIZE && memcmp(want, got, TAG_SIZE) == 0 ? 0 : -EBADMSG;
}
