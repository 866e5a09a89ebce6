/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *prefix;
static int journal_stderr = -1;

void log_set_max_level(int level)
{
	max_level = level;
}

void log_set_prefix(const char *p)
{
	prefix = p;
}

/* JOURNAL_STREAM is "dev:ino" of the stream systemd connected to stderr. */
static bool stderr_is_journal(void)
{
	unsigned long long dev, ino;
	const char *e = getenv("JOURNAL_STREAM");
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

int log_internal(int level, int error, const char *fmt, ...)
{
	int saved_errno = errno;
	char buf[2048];
	va_list ap;

	if (error < 0)
		error = -error;

	if (level <= max_level) {
		if (journal_stderr < 0)
			journal_stderr = stderr_is_journal();

		/* %m in fmt must print the error we were given. */
		errno = error;
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);

		if (journal_stderr)
			fprintf(stderr, "<%d>%s\n", level, buf);
		else if (prefix)
			fprintf(stderr, "%s: %s\n", prefix, buf);
		else
			fprintf(stderr, "%s\n", buf);
	}

	errno = saved_errno;
	return -error;
}
