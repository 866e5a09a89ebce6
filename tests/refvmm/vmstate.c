/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmstate.h"

static const char vmstate_magic[8] = "REFVMM\0\1";
#define VMSTATE_VERSION 2

int vmstate_create(void)
{
	int fd = memfd_create("vmstate", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* sized now: LUO freezes a memfd's size when it is preserved */
	if (ftruncate(fd, VMSTATE_SIZE) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int vmstate_write(int fd, const struct guest_ram *ram, uint64_t checksum, uint64_t realtime_us,
		  uint64_t tsc)
{
	struct vmstate s = {
		.version = VMSTATE_VERSION,
		.n_files = (uint32_t)ram->n_files,
		.seed = ram->seed,
		.bytes_per_file = ram->bytes_per_file,
		.frozen_realtime_us = realtime_us,
		.checksum = checksum,
		.frozen_tsc = tsc,
	};
	ssize_t n;

	if (ram->n_files > VMSTATE_FILES_MAX)
		return -E2BIG;
	memcpy(s.magic, vmstate_magic, sizeof(s.magic));
	for (size_t i = 0; i < ram->n_files; i++) {
		s.files[i].pass = ram->files[i].pass;
		s.files[i].pos = ram->files[i].pos;
	}
	n = pwrite(fd, &s, sizeof(s), 0);
	if (n < 0)
		return -errno;
	return n == sizeof(s) ? 0 : -EIO;
}

int vmstate_read(int fd, struct vmstate *ret)
{
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size != VMSTATE_SIZE)
		return -EBADMSG;
	n = pread(fd, ret, sizeof(*ret), 0);
	if (n < 0)
		return -errno;
	if (n != sizeof(*ret) || memcmp(ret->magic, vmstate_magic, sizeof(ret->magic)) ||
	    ret->version < 1 || ret->version > VMSTATE_VERSION || ret->n_files == 0 ||
	    ret->n_files > VMSTATE_FILES_MAX || ret->bytes_per_file == 0 ||
	    ret->bytes_per_file % sizeof(uint64_t))
		return -EBADMSG;
	/* version 1 never wrote them */
	if (ret->version < 2)
		ret->frozen_tsc = 0;
	return 0;
}
