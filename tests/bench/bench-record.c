/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "bench-record.h"
#include "macro.h"

int bench_record_write(const char *path, const struct bench_record *r)
{
	_cleanup_close_ int fd = -1;
	char line[512];
	int n;

	/* vm ids are [A-Za-z0-9._-]: nothing to escape */
	n = snprintf(line, sizeof(line),
		     "{\"vm_id\":\"%s\",\"boot\":\"%s\",\"fds\":%d,\"error\":%d,"
		     "\"start_ns\":%" PRIu64 ",\"prepare_ns\":%" PRIu64 ",\"prepared_ns\":%" PRIu64
		     ",\"freeze_ns\":%" PRIu64 ",\"frozen_ns\":%" PRIu64 ",\"restore_ns\":%" PRIu64
		     ",\"holding_ns\":%" PRIu64 ",\"resumed_ns\":%" PRIu64 "}\n",
		     r->vm_id, r->boot, r->fds, r->error, r->start_ns, r->prepare_ns, r->prepared_ns,
		     r->freeze_ns, r->frozen_ns, r->restore_ns, r->holding_ns, r->resumed_ns);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	/* O_APPEND and one write: lines of concurrent VMMs never interleave */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return negative_errno();
	if (write(fd, line, (size_t)n) != n)
		return -EIO;
	return 0;
}
