/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "socket-util.h"

int socket_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr cmsg;
		char buf[CMSG_SPACE(sizeof(int) * SOCKET_FDS_MAX)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (n_fds > SOCKET_FDS_MAX)
		return -E2BIG;
	if (n_fds > 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		mh.msg_control = &control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
	}

	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return negative_errno();
	if ((size_t)n != len)
		return -EMSGSIZE;
	return 0;
}

void close_many(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fds[i] = safe_close(fds[i]);
}

ssize_t socket_recv_fds(int sock, void *buf, size_t len, int *fds, size_t *n_fds)
{
	union {
		struct cmsghdr cmsg;
		char buf[CMSG_SPACE(sizeof(int) * SOCKET_FDS_MAX)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = &control,
		.msg_controllen = sizeof(control),
	};
	size_t room = n_fds ? *n_fds : 0, got = 0;
	struct cmsghdr *cmsg;
	int received[SOCKET_FDS_MAX];
	ssize_t n;

	if (n_fds)
		*n_fds = 0;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return negative_errno();

	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		size_t k;

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (got + k > SOCKET_FDS_MAX)
			k = SOCKET_FDS_MAX - got;
		memcpy(received + got, CMSG_DATA(cmsg), k * sizeof(int));
		got += k;
	}

	/* Never leak what we cannot hand over. */
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || got > room) {
		close_many(received, got);
		return -EMSGSIZE;
	}

	if (got > 0)
		memcpy(fds, received, got * sizeof(int));
	if (n_fds)
		*n_fds = got;
	return n;
}

static int sockaddr_un_set(struct sockaddr_un *sa, const char *path)
{
	size_t l = strlen(path);

	if (l == 0 || l >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, l);
	return 0;
}

int socket_listen_unix(const char *path, int type, mode_t mode, int backlog)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	int r;

	r = sockaddr_un_set(&sa, path);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negative_errno();

	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();
	if (chmod(path, mode) < 0)
		return negative_errno();
	if (listen(fd, backlog) < 0)
		return negative_errno();

	return TAKE_FD(fd);
}

int socket_connect_unix(const char *path, int type)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	int r;

	r = sockaddr_un_set(&sa, path);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();

	return TAKE_FD(fd);
}

int socket_peer_cred(int sock, struct ucred *ret)
{
	socklen_t l = sizeof(*ret);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, ret, &l) < 0)
		return negative_errno();
	if (l != sizeof(*ret))
		return -EIO;
	return 0;
}

int socket_peer_authorized(int sock, gid_t gid)
{
	gid_t groups[256];
	socklen_t l = sizeof(groups);
	struct ucred cred;
	int r;

	r = socket_peer_cred(sock, &cred);
	if (r < 0)
		return r;
	if (cred.uid == 0 || cred.uid == geteuid())
		return 1;
	if (gid == (gid_t)-1)
		return 0;
	if (cred.gid == gid)
		return 1;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups, &l) < 0)
		return errno == ERANGE ? -E2BIG : negative_errno();
	for (size_t i = 0; i < l / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}
