/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD shim that sends /dev/liveupdate, its session fds,
 * kexec_file_load(2) and reboot(LINUX_REBOOT_CMD_KEXEC) to the fake kernel
 * server (fake-kernel.c). It acts only while LIVEUPDATE_FAKE_KERNEL names
 * the server's socket; otherwise every call goes to libc untouched, so the
 * fake can never become the default.
 *
 * Fake fds are real sockets: a device open is a connection to the server,
 * a session fd is one end of a socketpair the server made. They can be
 * dup'd, inherited and passed with SCM_RIGHTS like the kernel's; the
 * server sees the last close as EOF, which is the kernel's release().
 *
 * Test fixture only: never installed.
 */

/* open() and open64() are separate symbols here; keep them so. */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake-wire.h"
#include "luo-uapi.h"
#include "macro.h"

#define EXPORT __attribute__((visibility("default")))

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD 0x00000001
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif
/* Above this memdup_user() cannot allocate (KMALLOC_MAX_SIZE on x86). */
#define KMALLOC_MAX (4UL << 20)

/* The interposed functions' prototypes, for -Wmissing-prototypes. */
EXPORT int open64(const char *path, int flags, ...);
EXPORT int openat64(int dirfd, const char *path, int flags, ...);
EXPORT int __open_2(const char *path, int flags);
EXPORT int __open64_2(const char *path, int flags);
EXPORT int __openat_2(int dirfd, const char *path, int flags);
EXPORT int __openat64_2(int dirfd, const char *path, int flags);

struct ioctl_reply {
	struct fake_msg m;
	uint8_t data[FAKE_ARG_MAX];
};

/* Look a libc symbol up once; racing threads store the same value. */
static void *next_symbol(void **cache, const char *name)
{
	void *f = __atomic_load_n(cache, __ATOMIC_RELAXED);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		if (!f)
			abort();
		__atomic_store_n(cache, f, __ATOMIC_RELAXED);
	}
	return f;
}

#define REAL(type, name)                                                                           \
	({                                                                                         \
		static void *_cache_;                                                              \
		(type) next_symbol(&_cache_, #name);                                               \
	})

static const char *fake_socket_path(void)
{
	const char *p = getenv(FAKE_WIRE_ENV);

	return p && *p ? p : NULL;
}

#define KEXEC_LOADED_PATH "/sys/kernel/kexec_loaded"

static bool open_is_fake(const char *path)
{
	return path && (strcmp(path, LUO_DEVICE_PATH) == 0 || strcmp(path, KEXEC_LOADED_PATH) == 0) &&
	       fake_socket_path();
}

/* Set errno from a negative errno and return -1, libc style. */
static int fail(int r)
{
	errno = -r;
	return -1;
}

static int connect_server(int flags)
{
	const char *path = fake_socket_path();
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | flags, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = negative_errno();

		close(fd);
		return r;
	}
	return fd;
}

/* Read user memory; -EFAULT where the kernel's copy_from_user would fault. */
static int user_read(void *dst, const void *src, size_t len)
{
	struct iovec local = {.iov_base = dst, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)src, .iov_len = len};
	ssize_t n;

	if (len == 0)
		return 0;
	n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0 || errno == EFAULT)
		return -EFAULT;
	/* process_vm_readv filtered (seccomp): trust the pointer. */
	memcpy(dst, src, len);
	return 0;
}

static int user_write(void *dst, const void *src, size_t len)
{
	struct iovec local = {.iov_base = (void *)src, .iov_len = len};
	struct iovec remote = {.iov_base = dst, .iov_len = len};
	ssize_t n;

	if (len == 0)
		return 0;
	n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0 || errno == EFAULT)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

/* copy_struct_from_user(): the user's bytes past what we carry must be zero. */
static int user_tail_check(const uint8_t *p, uint64_t len)
{
	uint8_t buf[4096];

	while (len > 0) {
		size_t n = MIN(len, sizeof(buf));

		if (user_read(buf, p, n) < 0)
			return -EFAULT;
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return -E2BIG;
		p += n;
		len -= n;
	}
	return 0;
}

/* The server's pid, learnt from SO_PEERCRED of a throwaway connection. */
static pid_t probe_server_pid(void)
{
	struct ucred uc = {};
	socklen_t l = sizeof(uc);
	int fd = connect_server(SOCK_CLOEXEC);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
		uc.pid = 0;
	close(fd);
	return uc.pid;
}

/*
 * Is fd one of the server's sockets? Its peer credentials name the server
 * whether it came from connect() or the server's socketpair(), and they
 * stay with the socket wherever SCM_RIGHTS takes it.
 */
static bool fd_is_fake(int fd)
{
	static pid_t server_pid;
	struct ucred uc = {};
	socklen_t l = sizeof(uc);
	int type = 0;
	socklen_t tl = sizeof(type);
	pid_t pid;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0 || uc.pid <= 0)
		return false;
	pid = __atomic_load_n(&server_pid, __ATOMIC_RELAXED);
	if (pid == uc.pid)
		return true;
	/* First use, or a new server since (tests start one each). */
	pid = probe_server_pid();
	__atomic_store_n(&server_pid, pid, __ATOMIC_RELAXED);
	return pid == uc.pid;
}

/* One request and its reply on a private connection (kexec, reboot). */
static int oneshot(const struct fake_msg *req, const int *fds, size_t n_fds)
{
	struct fake_msg reply = {};
	int fd, r;

	fd = connect_server(SOCK_CLOEXEC);
	if (fd < 0)
		return fd;
	r = fake_send(fd, req, fds, n_fds);
	if (r >= 0)
		r = fake_recv(fd, &reply, sizeof(reply), NULL, 0, 0);
	close(fd);
	if (r < 0)
		return r;
	return reply.op == 0 ? -EIO : reply.error;
}

/* /sys/kernel/kexec_loaded: the server's answer, a memfd of "0\n" or "1\n". */
static int fake_open_kexec_loaded(void)
{
	struct {
		struct fake_msg m;
		char data[16];
	} req = {.m = {.op = FAKE_OP_CONTROL, .data_len = 12}, .data = "kexec-loaded"};
	struct fake_msg reply = {};
	int fd, out = -1, r;

	fd = connect_server(SOCK_CLOEXEC);
	if (fd < 0)
		return fd;
	r = fake_send(fd, &req.m, NULL, 0);
	if (r >= 0)
		r = fake_recv(fd, &reply, sizeof(reply), &out, 1, 0);
	close(fd);
	if (r >= 0)
		r = reply.op == 0 ? -EIO : reply.error;
	if (r >= 0 && out < 0)
		r = -EIO;
	if (r < 0) {
		if (out >= 0)
			close(out);
		return r;
	}
	return out;
}

/* A device open is a connection the server accepts as the one open device. */
static int fake_open(int flags)
{
	struct fake_msg req = {.op = FAKE_OP_DEVICE_OPEN}, reply = {};
	int fd, r;

	fd = connect_server(flags & O_CLOEXEC ? SOCK_CLOEXEC : 0);
	if (fd < 0)
		return fd;
	r = fake_send(fd, &req, NULL, 0);
	if (r >= 0)
		r = fake_recv(fd, &reply, sizeof(reply), NULL, 0, 0);
	if (r >= 0)
		r = reply.op == 0 ? -EIO : reply.error;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static void ioctl_fill(struct ioctl_reply *req, unsigned long request, void *arg, uint32_t usize)
{
	size_t n = MIN(usize, FAKE_ARG_MAX);

	req->m.op = FAKE_OP_IOCTL;
	req->m.cmd = request;
	req->m.len = usize;
	if (user_read(req->data, arg, n) < 0)
		req->m.fault = -EFAULT;
	else
		req->m.data_len = n;
	if (usize > FAKE_ARG_MAX)
		req->m.tail =
		    user_tail_check((const uint8_t *)arg + FAKE_ARG_MAX, usize - FAKE_ARG_MAX);
}

/* PRESERVE_FD carries the fd itself; a bad one is the server's EBADF. */
static int ioctl_preserve_fd(struct ioctl_reply *req)
{
	int32_t fd;

	if (_IOC_NR(req->m.cmd) != _IOC_NR(LUO_IOCTL_PRESERVE_FD) || req->m.data_len < 8)
		return -1;
	memcpy(&fd, req->data + 4, sizeof(fd));
	if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
		req->m.fd_status[1] = -EBADF;
		return -1;
	}
	return fd;
}

/* Copy the reply out like luo_ucmd_respond(); a new fd goes into ->fd. */
static int ioctl_respond(void *arg, struct ioctl_reply *reply, int fd)
{
	int32_t v = fd;

	if (fd >= 0 && reply->m.data_len >= 8)
		memcpy(reply->data + 4, &v, sizeof(v));
	if (user_write(arg, reply->data, MIN(reply->m.data_len, FAKE_ARG_MAX)) < 0) {
		safe_close(fd); /* like the kernel's fput() on a failed respond */
		return -EFAULT;
	}
	return 0;
}

static int fake_ioctl(int fd, unsigned long request, void *arg)
{
	struct ioctl_reply req = {}, reply = {};
	int pair[2], fds[2], got = -1, r;
	uint32_t usize;

	if (user_read(&usize, arg, sizeof(usize)) < 0)
		return -EFAULT;
	ioctl_fill(&req, request, arg, usize);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return negative_errno();
	fds[0] = pair[1];
	fds[1] = ioctl_preserve_fd(&req);
	r = fake_send(fd, &req.m, fds, 2);
	close(pair[1]);
	if (r >= 0)
		r = fake_recv(pair[0], &reply.m, sizeof(reply), &got, 1, 0);
	close(pair[0]);
	if (r < 0 || reply.m.op == 0) {
		/* The server end is gone: a session of a previous "boot". */
		safe_close(got);
		return r == -EMFILE ? r : -EIO;
	}
	if (reply.m.error < 0) {
		safe_close(got);
		return reply.m.error;
	}
	return ioctl_respond(arg, &reply, got);
}

static long fake_kexec_file_load(int kernel_fd, int initrd_fd, unsigned long cmdline_len,
				 const char *cmdline, unsigned long flags)
{
	_cleanup_free_ struct fake_msg *req = calloc(1, FAKE_MSG_MAX);
	int fds[2] = {-1, -1};

	if (!req)
		return -ENOMEM;
	req->op = FAKE_OP_KEXEC_LOAD;
	req->cmd = flags;
	req->len = cmdline_len;
	if (!(flags & KEXEC_FILE_UNLOAD)) {
		if (fcntl(kernel_fd, F_GETFD) >= 0)
			fds[0] = kernel_fd;
		else
			req->fd_status[0] = -EBADF;
		if (!(flags & KEXEC_FILE_NO_INITRAMFS) && fcntl(initrd_fd, F_GETFD) >= 0)
			fds[1] = initrd_fd;
		else
			req->fd_status[1] = -EBADF;
	}
	if (cmdline_len > FAKE_DATA_MAX)
		req->tail = cmdline_len > KMALLOC_MAX ? -ENOMEM : -EINVAL;
	else if (user_read(req->data, cmdline, cmdline_len) < 0)
		req->fault = -EFAULT;
	else
		req->data_len = cmdline_len;
	/* A missing fd is sent as a gap: the server tells them apart by fd_status. */
	req->has_fd = (fds[0] >= 0) | (fds[1] >= 0) << 1;
	return oneshot(req, fds, 2);
}

/* The machine "jumps to the new kernel": this process ends here. */
static int fake_reboot_kexec(void)
{
	struct fake_msg req = {.op = FAKE_OP_REBOOT};
	int r;

	r = oneshot(&req, NULL, 0);
	if (r < 0)
		return r;
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

static int open_common(const char *path, int flags, mode_t mode,
		       int (*real)(const char *, int, ...))
{
	int fd;

	if (!open_is_fake(path))
		return real(path, flags, mode);
	fd = strcmp(path, KEXEC_LOADED_PATH) == 0 ? fake_open_kexec_loaded() : fake_open(flags);
	return fd < 0 ? fail(fd) : fd;
}

static int openat_common(int dirfd, const char *path, int flags, mode_t mode,
			 int (*real)(int, const char *, int, ...))
{
	int fd;

	if (!open_is_fake(path))
		return real(dirfd, path, flags, mode);
	fd = strcmp(path, KEXEC_LOADED_PATH) == 0 ? fake_open_kexec_loaded() : fake_open(flags);
	return fd < 0 ? fail(fd) : fd;
}

#define OPEN_NEEDS_MODE(f) (((f)&O_CREAT) || ((f)&O_TMPFILE) == O_TMPFILE)

#define VA_MODE(flags)                                                                             \
	({                                                                                         \
		mode_t _m_ = 0;                                                                    \
		if (OPEN_NEEDS_MODE(flags)) {                                                      \
			va_list ap;                                                                \
			va_start(ap, flags);                                                       \
			_m_ = va_arg(ap, mode_t);                                                  \
			va_end(ap);                                                                \
		}                                                                                  \
		_m_;                                                                               \
	})

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

EXPORT int open(const char *path, int flags, ...)
{
	return open_common(path, flags, VA_MODE(flags), REAL(open_fn, open));
}

EXPORT int open64(const char *path, int flags, ...)
{
	return open_common(path, flags, VA_MODE(flags), REAL(open_fn, open64));
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	return openat_common(dirfd, path, flags, VA_MODE(flags), REAL(openat_fn, openat));
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	return openat_common(dirfd, path, flags, VA_MODE(flags), REAL(openat_fn, openat64));
}

/* The _FORTIFY_SOURCE entry points (no mode argument). */
EXPORT int __open_2(const char *path, int flags)
{
	return open_common(path, flags, 0, REAL(open_fn, __open_2));
}

EXPORT int __open64_2(const char *path, int flags)
{
	return open_common(path, flags, 0, REAL(open_fn, __open64_2));
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return openat_common(dirfd, path, flags, 0, REAL(openat_fn, __openat_2));
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return openat_common(dirfd, path, flags, 0, REAL(openat_fn, __openat64_2));
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	typedef int (*ioctl_fn)(int, unsigned long, ...);
	va_list ap;
	void *arg;
	int r;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (_IOC_TYPE(request) != LUO_IOCTL_TYPE || !fake_socket_path() || !fd_is_fake(fd))
		return REAL(ioctl_fn, ioctl)(fd, request, arg);
	r = fake_ioctl(fd, request, arg);
	return r < 0 ? fail(r) : r;
}

/* Never reboot or load a kernel into the machine running the tests. */
static long fake_reboot_cmd(unsigned int cmd)
{
	return cmd == LINUX_REBOOT_CMD_KEXEC ? fake_reboot_kexec() : -EPERM;
}

EXPORT int reboot(int howto)
{
	typedef int (*reboot_fn)(int);
	long r;

	if (!fake_socket_path())
		return REAL(reboot_fn, reboot)(howto);
	r = fake_reboot_cmd((unsigned int)howto);
	return r < 0 ? fail((int)r) : 0;
}

static long fake_syscall(long nr, const long *a)
{
	switch (nr) {
	case SYS_kexec_file_load:
		return fake_kexec_file_load((int)a[0], (int)a[1], (unsigned long)a[2],
					    (const char *)a[3], (unsigned long)a[4]);
	case SYS_kexec_load:
		return -ENOSYS; /* live update needs kexec_file_load(2) */
	case SYS_reboot:
		if ((unsigned int)a[0] != LINUX_REBOOT_MAGIC1 ||
		    ((unsigned int)a[1] != LINUX_REBOOT_MAGIC2 &&
		     (unsigned int)a[1] != LINUX_REBOOT_MAGIC2A &&
		     (unsigned int)a[1] != LINUX_REBOOT_MAGIC2B &&
		     (unsigned int)a[1] != LINUX_REBOOT_MAGIC2C))
			return -EINVAL;
		return fake_reboot_cmd((unsigned int)a[2]);
	}
	return 1; /* not ours */
}

EXPORT long syscall(long nr, ...)
{
	typedef long (*syscall_fn)(long, ...);
	long a[6], r;
	va_list ap;

	va_start(ap, nr);
	for (size_t i = 0; i < ARRAY_SIZE(a); i++)
		a[i] = va_arg(ap, long);
	va_end(ap);

	if (fake_socket_path()) {
		r = fake_syscall(nr, a);
		if (r <= 0)
			return r < 0 ? fail((int)r) : 0;
	}
	return REAL(syscall_fn, syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
