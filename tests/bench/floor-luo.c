/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The floor's side of the kernel: the ioctls, kexec_file_load and reboot
 * liveupdated makes, in its order, with a manifest that is a list of
 * session names instead of JSON. Through the fake kernel's shim, like the
 * daemon's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench-clock.h"
#include "floor-daemon.h"
#include "luo.h"
#include "macro.h"

#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#define CMDLINE "liveupdate=on kho=on"
#define MANIFEST_MAX (1 << 20)

static void session_name(char buf[static LUO_SESSION_NAME_SIZE], unsigned vm)
{
	snprintf(buf, LUO_SESSION_NAME_SIZE, "%s.vm-%04u", FLOOR_SESSION, vm);
}

static int read_file(int session, uint64_t token, char *buf, size_t size)
{
	_cleanup_close_ int fd = luo_retrieve_fd(session, token);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, size - 1, 0);
	if (n < 0)
		return negative_errno();
	buf[n] = '\0';
	return 0;
}

/* What the new boot reads: the manifest, the record, then every VMM's session. */
static int restore(struct floor *f, int luo)
{
	_cleanup_free_ char *manifest = malloc(MANIFEST_MAX), *record = malloc(MANIFEST_MAX);
	char name[LUO_SESSION_NAME_SIZE];
	unsigned n = 0, fds = 0;
	int r;

	if (!manifest || !record)
		return -ENOMEM;
	r = read_file(f->session, FLOOR_MANIFEST_TOKEN, manifest, MANIFEST_MAX);
	if (r >= 0)
		r = read_file(f->session, FLOOR_RECORD_TOKEN, record, MANIFEST_MAX);
	if (r < 0)
		return r;
	if (sscanf(manifest, "%u %u", &n, &fds) != 2 || n != f->n || fds != f->fds)
		return -EBADMSG;
	for (unsigned i = 0; i < f->n; i++) {
		session_name(name, i);
		f->vms[i].session = luo_retrieve_session(luo, name);
		if (f->vms[i].session < 0)
			return f->vms[i].session;
	}
	return 0;
}

int floor_luo_start(struct floor *f)
{
	_cleanup_close_ int luo = luo_open(NULL);

	if (luo < 0)
		return luo;
	f->session = luo_retrieve_session(luo, FLOOR_SESSION);
	if (f->session == -ENOENT)
		return 0;
	if (f->session < 0)
		return f->session;
	f->incoming = true;
	return restore(f, luo);
}

int floor_luo_prepare(struct floor *f, int (*created)(struct floor *f, unsigned vm))
{
	_cleanup_close_ int luo = -1, kfd = -1;
	char name[LUO_SESSION_NAME_SIZE];
	int r;

	luo = luo_open(NULL);
	if (luo < 0)
		return luo;
	kfd = open(f->kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0)
		return negative_errno();
	if (syscall(SYS_kexec_file_load, kfd, -1, sizeof(CMDLINE), CMDLINE, KEXEC_FILE_NO_INITRAMFS) < 0)
		return negative_errno();
	f->session = luo_create_session(luo, FLOOR_SESSION);
	if (f->session < 0)
		return f->session;
	for (unsigned i = 0; i < f->n; i++) {
		session_name(name, i);
		f->vms[i].session = luo_create_session(luo, name);
		if (f->vms[i].session < 0)
			return f->vms[i].session;
		r = created(f, i);
		if (r < 0)
			return r;
	}
	return 0;
}

static int memfd_with(const char *text, size_t size)
{
	_cleanup_close_ int fd = memfd_create("floor", MFD_CLOEXEC);
	size_t len = strlen(text);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return negative_errno();
	if (len && pwrite(fd, text, len, 0) != (ssize_t)len)
		return -EIO;
	return TAKE_FD(fd);
}

int floor_luo_commit(struct floor *f)
{
	_cleanup_free_ char *manifest = NULL;
	_cleanup_close_ int fd = -1;
	char name[LUO_SESSION_NAME_SIZE];
	size_t len, size = (size_t)f->n * LUO_SESSION_NAME_SIZE + 64;
	int r;

	manifest = malloc(size);
	if (!manifest)
		return -ENOMEM;
	len = (size_t)snprintf(manifest, size, "%u %u\n", f->n, f->fds);
	for (unsigned i = 0; i < f->n; i++) {
		session_name(name, i);
		len += (size_t)snprintf(manifest + len, size - len, "%s\n", name);
	}
	fd = memfd_with(manifest, len);
	if (fd < 0)
		return fd;
	r = luo_preserve_fd(f->session, fd, FLOOR_MANIFEST_TOKEN);
	if (r < 0)
		return r;
	/* room for one stamp per VMM, written in place at the jump */
	f->record = memfd_with("", (size_t)f->n * sizeof(uint64_t) + 64);
	if (f->record < 0)
		return f->record;
	return luo_preserve_fd(f->session, f->record, FLOOR_RECORD_TOKEN);
}

int floor_luo_jump(struct floor *f)
{
	uint64_t now = bench_now_ns();
	size_t size = (size_t)f->n * sizeof(uint64_t);
	_cleanup_free_ uint64_t *stamps = malloc(size ?: 1);

	if (!stamps)
		return -ENOMEM;
	for (unsigned i = 0; i < f->n; i++)
		stamps[i] = now;
	if (pwrite(f->record, stamps, size, 0) != (ssize_t)size)
		return -EIO;
	if (reboot(LINUX_REBOOT_CMD_KEXEC) < 0)
		return negative_errno();
	return -EINTR;
}
