/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench-milestone.h"
#include "macro.h"

static int env_uint(const char *name, unsigned long *ret)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return -ENOENT;
	errno = 0;
	*ret = strtoul(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

int bench_milestone(const char *name)
{
	const char *dir = getenv("BENCH_SYNC_DIR");
	unsigned long count, notify_fd;
	char path[PATH_MAX];
	_cleanup_close_ int fd = -1;
	uint64_t *counter;
	int r = 0;

	if (!dir || env_uint("BENCH_COUNT", &count) < 0 || env_uint("BENCH_NOTIFY_FD", &notify_fd) < 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	/* no counter: the driver does not wait for this one */
	if (fd < 0)
		return errno == ENOENT ? 0 : negative_errno();
	counter = mmap(NULL, sizeof(*counter), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (counter == MAP_FAILED)
		return negative_errno();
	/* a shared mapping: the add is atomic across processes */
	if (__atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST) == count &&
	    write((int)notify_fd, "", 1) != 1)
		r = negative_errno();
	munmap(counter, sizeof(*counter));
	return r;
}
