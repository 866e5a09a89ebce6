/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * listen-exec: start a daemon the way systemd's socket activation does,
 * for the bench driver. The two listening sockets it inherits move to fd 3
 * (the VMM socket) and 4 (the control socket), LISTEN_PID becomes its own
 * pid (which the exec keeps), and the daemon replaces it:
 *
 *   listen-exec VMM_FD CONTROL_FD PROGRAM [ARGS...]
 *
 * A C wrapper rather than a shell or Python: the driver stamps the
 * daemon's start just before it, and a wrapper costing milliseconds would
 * be charged to the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || v < 0 || v > 65535 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	int src[2], tmp[2];
	char pid[16];

	if (argc < 4 || (src[0] = parse_fd(argv[1])) < 0 || (src[1] = parse_fd(argv[2])) < 0) {
		fprintf(stderr, "usage: listen-exec VMM_FD CONTROL_FD PROGRAM [ARGS...]\n");
		return 2;
	}
	/* out of the way first: either may already sit on 3 or 4 */
	for (int i = 0; i < 2; i++) {
		tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
		if (tmp[i] < 0) {
			perror("listen-exec");
			return 1;
		}
	}
	for (int i = 0; i < 2; i++)
		if (src[i] != 3 && src[i] != 4)
			close(src[i]);
	for (int i = 0; i < 2; i++)
		if (dup2(tmp[i], 3 + i) < 0) {
			perror("listen-exec");
			return 1;
		}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (setenv("LISTEN_PID", pid, 1) < 0 || setenv("LISTEN_FDS", "2", 1) < 0 ||
	    setenv("LISTEN_FDNAMES", "vmm:control", 1) < 0) {
		perror("listen-exec");
		return 1;
	}
	execv(argv[3], argv + 3);
	perror("listen-exec: exec");
	return 127;
}
