/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "edu.h"
#include "events.h"
#include "passthrough.h"
#include "pattern.h"

static const char *kmsg_prefix; /* NULL: stdout only */

void events_init(const char *prefix)
{
	kmsg_prefix = prefix;
}

/*
 * The serial console interleaves the kernel's messages into a userspace
 * line printed at the same moment (preserving and kexecing print plenty);
 * a kernel log record is never split, so the test reads the events there.
 */
void emit(const char *fmt, ...)
{
	char line[512], record[600];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s\n", line);
	fflush(stdout);
	if (!kmsg_prefix)
		return;
	/* one write, one record */
	n = snprintf(record, sizeof(record), "<6>%s%s\n", kmsg_prefix, line);
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, record, (size_t)n);
		close(fd);
	}
}

void event_error(const char *what, int err)
{
	emit("{\"event\":\"error\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}", what, err,
	     strerror(err));
}

bool event_check(const char *step, const uint8_t *ram, unsigned int offset, unsigned int seed,
		 bool zero_before)
{
	size_t first_bad = 0, bad = pattern_mismatches(ram + offset, seed, &first_bad);

	emit("{\"event\":\"dma\",\"step\":\"%s\",\"iova\":\"0x%x\",\"bytes\":%u,"
	     "\"zero_before\":%s,\"bad_bytes\":%zu,\"first_bad\":%zd}",
	     step, GUEST_RAM_IOVA + offset, EDU_TRANSFER, zero_before ? "true" : "false", bad,
	     bad ? (ssize_t)first_bad : -1);
	return bad == 0 && zero_before;
}

const char *json_u64_or_null(char buf[24], bool valid, uint64_t v)
{
	if (!valid)
		return "null";
	snprintf(buf, 24, "%" PRIu64, v);
	return buf;
}

bool all_zero(const uint8_t *p)
{
	for (size_t i = 0; i < EDU_TRANSFER; i++)
		if (p[i])
			return false;
	return true;
}

int event_dma(const Passthrough *p, const char *step, int src, unsigned int dst,
	      unsigned int seed)
{
	bool zero = all_zero(p->ram + dst);
	char what[64];
	int r = 0;

	if (src != EVENT_DMA_FROM_BUFFER) {
		pattern_fill(p->ram + src, seed);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		r = edu_dma(p->bar0, GUEST_RAM_IOVA + (unsigned int)src, EDU_DMA_BUFFER,
			    EDU_TO_DEVICE);
	}
	if (r == 0)
		r = edu_dma(p->bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + dst, EDU_TO_RAM);
	if (r < 0) {
		snprintf(what, sizeof(what), "dma %s", step);
		event_error(what, -r);
		return r;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return event_check(step, p->ram, dst, seed, zero);
}
