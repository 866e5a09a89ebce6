/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers every file of the project uses: scope-bound cleanup in the
 * style of systemd and dbus-broker, and ownership hand-off of pointers and
 * file descriptors out of a cleanup-guarded local.
 */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _fallthrough_ __attribute__((fallthrough))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Take ownership of *p, leaving NULL (or -1 for fds) behind. */
#define TAKE_PTR(p)                                                       \
	({                                                                \
		__typeof__(p) _p_ = (p);                                  \
		(p) = NULL;                                               \
		_p_;                                                      \
	})
#define TAKE_FD(fd)                                                       \
	({                                                                \
		int _fd_ = (fd);                                          \
		(fd) = -1;                                                \
		_fd_;                                                     \
	})

/* Define foo_freep() for a foo_free() that accepts NULL. */
#define DEFINE_FREEP(type, func)                                          \
	static inline void func##p(type **p)                              \
	{                                                                 \
		if (*p)                                                   \
			func(*p);                                         \
	}

/* A copy of n bytes of p, or NULL. */
static inline void *memdup(const void *p, size_t n)
{
	void *q = malloc(n ?: 1);

	return q ? __builtin_memcpy(q, p, n) : NULL;
}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Close an fd, keeping errno, and return -1 so callers can write fd = safe_close(fd). */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	*fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* errno as a negative value, never 0 (a failing libc call that forgot errno). */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
