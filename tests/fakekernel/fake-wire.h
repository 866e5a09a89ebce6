/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The private protocol between the fake kernel server (fake-kernel.c), the
 * LD_PRELOAD shim (fakeluo-preload.c) and the tests. Test fixture only: it
 * is never installed and nothing outside tests/ may include it.
 *
 * Every connection is an AF_UNIX SOCK_SEQPACKET socket, so one message is
 * one request or one reply. A new connection to the server's socket starts
 * with one message whose op says what it is:
 *   DEVICE_OPEN   the connection becomes a /dev/liveupdate fd (or is refused)
 *   KEXEC_LOAD    one kexec_file_load(2), answered on the same connection
 *   REBOOT        one reboot(LINUX_REBOOT_CMD_KEXEC)
 *   CONTROL       one text command from a test harness
 * A connection that closes without a message is a probe (the shim asks for
 * the server's pid with SO_PEERCRED).
 *
 * IOCTL requests travel on a device or session socket, which several
 * processes may share; so each carries its own reply socket as its first fd
 * and the reply goes there, never to another process.
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define FAKE_WIRE_ENV "LIVEUPDATE_FAKE_KERNEL"

/* Bytes of an ioctl argument copied in; larger than every LUO struct (72). */
#define FAKE_ARG_MAX 128
/* Largest kexec command line carried; the kernel's own limit is ~2 KiB. */
#define FAKE_DATA_MAX 65536
#define FAKE_FDS_MAX 2

enum fake_op {
	FAKE_OP_DEVICE_OPEN = 1,
	FAKE_OP_IOCTL,
	FAKE_OP_KEXEC_LOAD,
	FAKE_OP_REBOOT,
	FAKE_OP_CONTROL,
};

struct fake_msg {
	uint32_t op;
	int32_t error;	      /* reply: 0 or -errno */
	uint64_t cmd;	      /* ioctl request, kexec flags */
	uint64_t len;	      /* ioctl: the size member; kexec: cmdline_len */
	int32_t fault;	      /* -EFAULT when the caller's buffer was unreadable */
	int32_t tail;	      /* ioctl: -E2BIG/-EFAULT for user bytes beyond data */
	int32_t fd_status[2]; /* kexec: 0 or -EBADF for the kernel and initrd fds */
	uint32_t data_len;
	uint32_t has_fd; /* reply: an fd is attached */
	uint8_t data[];
};

#define FAKE_MSG_MAX (sizeof(struct fake_msg) + FAKE_DATA_MAX)

/* Send msg with its data and up to FAKE_FDS_MAX fds (fds < 0 are skipped). */
static inline int fake_send(int sock, const struct fake_msg *msg, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr cmsg;
		char buf[CMSG_SPACE(sizeof(int) * FAKE_FDS_MAX)];
	} control;
	struct iovec iov = {
	    .iov_base = (void *)msg,
	    .iov_len = sizeof(*msg) + msg->data_len,
	};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int pass[FAKE_FDS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < n_fds && i < FAKE_FDS_MAX; i++)
		if (fds[i] >= 0)
			pass[n++] = fds[i];
	if (n > 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		mh.msg_control = &control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(cmsg), pass, sizeof(int) * n);
	}
	for (;;) {
		ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (r >= 0)
			return (size_t)r == iov.iov_len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return errno > 0 ? -errno : -EIO;
	}
}

/*
 * Receive one message into msg (size bytes of room) and its fds
 * (O_CLOEXEC, like every fd the kernel installs for LUO). Returns the
 * number of fds, 0 with msg->op == 0 on EOF, or -errno. A message that does
 * not fit is refused and its fds closed.
 */
static inline int fake_recv(int sock, struct fake_msg *msg, size_t size, int *fds, size_t room,
			    int flags)
{
	union {
		struct cmsghdr cmsg;
		char buf[CMSG_SPACE(sizeof(int) * FAKE_FDS_MAX)];
	} control;
	struct iovec iov = {.iov_base = msg, .iov_len = size};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = &control,
	    .msg_controllen = sizeof(control),
	};
	int got[FAKE_FDS_MAX];
	size_t n = 0;
	ssize_t r;

	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno > 0 ? -errno : -EIO;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < FAKE_FDS_MAX)
				got[n++] = fd;
			else
				close(fd);
		}
	}

	if (r == 0) {
		msg->op = 0;
		msg->data_len = 0;
	} else if ((size_t)r < sizeof(*msg) || (size_t)r != sizeof(*msg) + msg->data_len ||
		   (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n > room) {
		for (size_t i = 0; i < n; i++)
			close(got[i]);
		return (mh.msg_flags & MSG_CTRUNC) ? -EMFILE : -EBADMSG;
	}
	if (n > 0 && fds)
		memcpy(fds, got, n * sizeof(int));
	return (int)n;
}
