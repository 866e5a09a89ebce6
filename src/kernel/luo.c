/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "luo.h"
#include "macro.h"

int luo_open(const char *path)
{
	int fd = open(path ?: LUO_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	return fd < 0 ? negative_errno() : fd;
}

int luo_session_name_valid(const char *name)
{
	size_t n = name ? strnlen(name, LUO_SESSION_NAME_SIZE) : 0;

	return n > 0 && n < LUO_SESSION_NAME_SIZE;
}

static int session_ioctl(int luo_fd, unsigned long request, const char *name)
{
	/* create and retrieve share one layout */
	struct luo_create_session_arg arg = { .size = sizeof(arg), .fd = -1 };

	if (!luo_session_name_valid(name))
		return -EINVAL;
	memcpy(arg.name, name, strlen(name));

	if (ioctl(luo_fd, request, &arg) < 0)
		return negative_errno();
	if (arg.fd < 0)
		return -EIO;
	/* The kernel installs session fds with O_CLOEXEC; make sure. */
	(void)fcntl(arg.fd, F_SETFD, FD_CLOEXEC);
	return arg.fd;
}

int luo_create_session(int luo_fd, const char *name)
{
	return session_ioctl(luo_fd, LUO_IOCTL_CREATE_SESSION, name);
}

int luo_retrieve_session(int luo_fd, const char *name)
{
	return session_ioctl(luo_fd, LUO_IOCTL_RETRIEVE_SESSION, name);
}

int luo_preserve_fd(int session_fd, int fd, uint64_t token)
{
	struct luo_preserve_fd_arg arg = { .size = sizeof(arg), .fd = fd, .token = token };

	return ioctl(session_fd, LUO_IOCTL_PRESERVE_FD, &arg) < 0 ? negative_errno() : 0;
}

int luo_retrieve_fd(int session_fd, uint64_t token)
{
	struct luo_retrieve_fd_arg arg = { .size = sizeof(arg), .fd = -1, .token = token };

	if (ioctl(session_fd, LUO_IOCTL_RETRIEVE_FD, &arg) < 0)
		return negative_errno();
	if (arg.fd < 0)
		return -EIO;
	/* FD_CLOEXEC is not preserved across kexec; set it here. */
	(void)fcntl(arg.fd, F_SETFD, FD_CLOEXEC);
	return arg.fd;
}

int luo_session_is_incoming(int session_fd)
{
	int fd = luo_retrieve_fd(session_fd, UINT64_MAX);

	if (fd >= 0) {
		/* someone really used that token: a retrieved file is ours to drop */
		close(fd);
		return 1;
	}
	if (fd == -ENOENT)
		return 1;
	if (fd == -EINVAL)
		return 0;
	return fd;
}

int luo_finish(int session_fd)
{
	struct luo_finish_arg arg = { .size = sizeof(arg) };

	return ioctl(session_fd, LUO_IOCTL_FINISH, &arg) < 0 ? negative_errno() : 0;
}

int luo_get_name(int session_fd, char name[LUO_SESSION_NAME_SIZE])
{
	struct luo_get_name_arg arg = { .size = sizeof(arg) };

	if (ioctl(session_fd, LUO_IOCTL_GET_NAME, &arg) < 0)
		return negative_errno();
	memcpy(name, arg.name, LUO_SESSION_NAME_SIZE);
	name[LUO_SESSION_NAME_SIZE - 1] = '\0';
	return 0;
}
