/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdint.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kexec.h"
#include "macro.h"

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD 0x00000001
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif

/* The x86 boot protocol: "HdrS" at 0x202 in every bzImage since 2.00. */
#define BZIMAGE_MAGIC_OFFSET 0x202
#define BZIMAGE_MAGIC "HdrS"

int kexec_image_check(int kernel_fd)
{
	char magic[4];
	struct stat st;
	ssize_t n;

	if (fstat(kernel_fd, &st) < 0)
		return negative_errno();
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	n = pread(kernel_fd, magic, sizeof(magic), BZIMAGE_MAGIC_OFFSET);
	if (n < 0)
		return negative_errno();
	if (n != sizeof(magic) || memcmp(magic, BZIMAGE_MAGIC, sizeof(magic)) != 0)
		return -ENOEXEC;
	return 0;
}

int kexec_load(int kernel_fd, int initrd_fd, const char *cmdline)
{
	unsigned long flags = initrd_fd < 0 ? KEXEC_FILE_NO_INITRAMFS : 0;
	size_t len = strlen(cmdline) + 1; /* the kernel wants the NUL counted */
	long r;

	if (len > KEXEC_CMDLINE_MAX)
		return -E2BIG;
	r = syscall(SYS_kexec_file_load, kernel_fd, initrd_fd, len, cmdline, flags);
	return r < 0 ? negative_errno() : 0;
}

int kexec_unload(void)
{
	long r = syscall(SYS_kexec_file_load, -1, -1, 0, NULL, KEXEC_FILE_UNLOAD);

	return r < 0 ? negative_errno() : 0;
}

int kexec_loaded(void)
{
	char buf[16] = "";
	ssize_t n;
	int fd;

	fd = open("/sys/kernel/kexec_loaded", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return negative_errno();
	if (n == 0 || (buf[0] != '0' && buf[0] != '1'))
		return -EBADMSG;
	return buf[0] == '1';
}

int kexec_reboot(void)
{
	sync();
	if (reboot(LINUX_REBOOT_CMD_KEXEC) < 0)
		return negative_errno();
	/* Only a fake kernel returns here; the real one does not. */
	return -EINTR;
}
