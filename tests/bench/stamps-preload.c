/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbench-stamps: an LD_PRELOAD shim that watches a daemon at its
 * syscalls, for liveupdated and floor-daemon alike, so that neither
 * reports its own figures:
 *
 *   - the VMM protocol packets it sends and receives: for each kind the
 *     first and the last, on the bench's clock (bench-clock.h), and how
 *     many; a packet is recognised by its type and its exact size
 *     (include/liveupdate/vmm-protocol.h), which none of the fake kernel's
 *     own, larger messages has;
 *   - its last sync() and its reboot();
 *   - the LUO ioctls it makes and the time it waits in them, and the
 *     packets that carry fds (SCM_RIGHTS) either way: the floor's counts
 *     must equal the daemon's;
 *   - inside the blackout (the first FREEZE sent to reboot()), what must
 *     not happen there: LUO ioctls, kexec_file_load(2), module loading.
 *
 * It writes one JSON line to $BENCH_STAMPS when the process calls reboot()
 * (before the call goes on to the fake kernel's shim, which ends the
 * process) and when it exits, with its peak RSS (VmHWM) then: wait4()'s
 * ru_maxrss would count the driver's forked copy too. It is preloaded
 * before libfakeluo-preload.so; without $BENCH_STAMPS it only counts.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liveupdate/vmm-protocol.h>

#include "bench-clock.h"
#include "luo-uapi.h"

#define EXPORT __attribute__((visibility("default")))

struct kind {
	const char *name;
	uint32_t type;
	bool sent; /* by the daemon, else received */
	uint64_t first_ns, last_ns, count;
};

static struct kind kinds[] = {
	{ "hello", LU_VMM_MSG_HELLO, false },
	{ "preserve_fd", LU_VMM_MSG_PRESERVE_FD, false },
	{ "prepare_done", LU_VMM_MSG_PREPARE_DONE, false },
	{ "frozen", LU_VMM_MSG_FROZEN, false },
	{ "resumed", LU_VMM_MSG_RESUMED, false },
	{ "prepare", LU_VMM_MSG_PREPARE, true },
	{ "freeze", LU_VMM_MSG_FREEZE, true },
	{ "thaw", LU_VMM_MSG_THAW, true },
	{ "restore", LU_VMM_MSG_RESTORE, true },
};

static const struct kind *freeze; /* kinds[]' FREEZE: its first starts the blackout */
static uint64_t init_ns, sync_last_ns, reboot_ns;
static uint64_t luo_ioctls, luo_ioctl_ns, fds_sent, fds_received, blackout_calls;

static bool in_blackout(void)
{
	return freeze && freeze->count > 0 && !reboot_ns;
}

static size_t size_of(uint32_t type, size_t len)
{
	switch (type) {
	case LU_VMM_MSG_HELLO:
		return sizeof(struct lu_vmm_hello);
	case LU_VMM_MSG_PRESERVE_FD:
		return sizeof(struct lu_vmm_token_msg);
	case LU_VMM_MSG_PREPARE:
		return sizeof(struct lu_vmm_prepare);
	case LU_VMM_MSG_FREEZE:
		return sizeof(struct lu_vmm_freeze);
	case LU_VMM_MSG_THAW:
		return sizeof(struct lu_vmm_thaw);
	case LU_VMM_MSG_RESTORE:
		/* the header and a whole number of tokens */
		if (len < sizeof(struct lu_vmm_restore) ||
		    (len - sizeof(struct lu_vmm_restore)) % sizeof(uint64_t))
			return 0;
		return len;
	default:
		return sizeof(struct lu_vmm_header);
	}
}

static void stamp(const struct msghdr *mh, size_t len, bool sent)
{
	uint64_t now = bench_now_ns();
	uint32_t type;

	if (!mh || mh->msg_iovlen < 1 || mh->msg_iov[0].iov_len < sizeof(type) ||
	    len < sizeof(type))
		return;
	memcpy(&type, mh->msg_iov[0].iov_base, sizeof(type));
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct kind *k = &kinds[i];

		if (k->type != type || k->sent != sent || size_of(type, len) != len)
			continue;
		if (!k->count++)
			k->first_ns = now;
		k->last_ns = now;
		return;
	}
}

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f)
		abort();
	return f;
}

/* VmHWM of /proc/self/status in KiB, 0 if unknown. */
static unsigned long vmhwm_kib(void)
{
	char buf[4096], *p;
	ssize_t n;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nVmHWM:");
	return p ? strtoul(p + 7, NULL, 10) : 0;
}

static void write_stamps(const char *why)
{
	const char *path = getenv("BENCH_STAMPS");
	char line[2048];
	size_t off = 0;
	int fd;

	if (!path)
		return;
	off += (size_t)snprintf(line + off, sizeof(line) - off,
				"{\"pid\":%d,\"why\":\"%s\",\"init_ns\":%" PRIu64 ",\"sync_last_ns\":%" PRIu64
				",\"reboot_ns\":%" PRIu64 ",\"luo_ioctls\":%" PRIu64
				",\"luo_ioctl_ns\":%" PRIu64 ",\"fds_sent\":%" PRIu64
				",\"fds_received\":%" PRIu64 ",\"blackout_calls\":%" PRIu64
				",\"vmhwm_kib\":%lu",
				(int)getpid(), why, init_ns, sync_last_ns, reboot_ns, luo_ioctls,
				luo_ioctl_ns, fds_sent, fds_received, blackout_calls, vmhwm_kib());
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && off < sizeof(line); i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off,
					",\"%s\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", kinds[i].name,
					kinds[i].first_ns, kinds[i].last_ns, kinds[i].count);
	if (off + 2 >= sizeof(line))
		return;
	line[off++] = '}';
	line[off++] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	(void)!write(fd, line, off);
	close(fd);
}

__attribute__((constructor)) static void stamps_init(void)
{
	init_ns = bench_now_ns();
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].type == LU_VMM_MSG_FREEZE)
			freeze = &kinds[i];
}

__attribute__((destructor)) static void stamps_done(void)
{
	write_stamps("exit");
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);
	size_t len = 0;

	if (!real)
		real = next("sendmsg");
	if (mh) {
		for (size_t i = 0; i < mh->msg_iovlen; i++)
			len += mh->msg_iov[i].iov_len;
		stamp(mh, len, true);
		fds_sent += mh->msg_controllen > 0;
	}
	return real(fd, mh, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
	static ssize_t (*real)(int, struct msghdr *, int);
	ssize_t n;

	if (!real)
		real = next("recvmsg");
	n = real(fd, mh, flags);
	if (n > 0 && !(flags & MSG_PEEK)) {
		stamp(mh, (size_t)n, false);
		fds_received += mh->msg_controllen > 0;
	}
	return n;
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	static int (*real)(int, unsigned long, ...);
	uint64_t start;
	va_list ap;
	void *arg;
	int r;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = next("ioctl");
	if (_IOC_TYPE(request) != LUO_IOCTL_TYPE)
		return real(fd, request, arg);
	blackout_calls += in_blackout();
	start = bench_now_ns();
	r = real(fd, request, arg);
	luo_ioctls++;
	luo_ioctl_ns += bench_now_ns() - start;
	return r;
}

/* libkmod loads modules and the daemon loads kernels through syscall(2). */
EXPORT long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (size_t i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = next("syscall");
	if (nr == SYS_kexec_file_load || nr == SYS_finit_module || nr == SYS_init_module)
		blackout_calls += in_blackout();
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

EXPORT void sync(void)
{
	static void (*real)(void);

	if (!real)
		real = next("sync");
	sync_last_ns = bench_now_ns();
	real();
}

EXPORT int reboot(int howto)
{
	static int (*real)(int);

	if (!real)
		real = next("reboot");
	reboot_ns = bench_now_ns();
	write_stamps("reboot");
	return real(howto);
}
