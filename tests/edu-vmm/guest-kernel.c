/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "guest-kernel.h"
#include "kexec.h"

int load_next_kernel(const char *image, const char *initrd, const char *append)
{
	char *running = NULL, *cmdline = NULL;
	int kfd = -1, ifd = -1, r;

	r = cmdline_read_running(NULL, &running);
	if (r >= 0)
		r = cmdline_build(running, append, &cmdline);
	if (r >= 0) {
		kfd = open(image, O_RDONLY | O_CLOEXEC);
		ifd = initrd ? open(initrd, O_RDONLY | O_CLOEXEC) : -1;
		r = kfd < 0 || (initrd && ifd < 0) ? -errno : kexec_load(kfd, ifd, cmdline);
	}
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	free(running);
	free(cmdline);
	return r;
}

/*
 * Exact: the kernel keeps per-CPU deltas and folds them in only every
 * second, unless told to now (vm.stat_refresh).
 */
long vmstat(const char *name)
{
	long value, found = -1;
	char key[64];
	FILE *f;
	int fd;

	fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, "1", 1) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &value) == 2)
		if (strcmp(key, name) == 0)
			found = value;
	fclose(f);
	return found;
}

static int command_register(const char *slot)
{
	char path[128];
	uint16_t command;
	int fd, n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", slot);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, &command, sizeof(command), PCI_COMMAND);
	close(fd);
	return n == sizeof(command) ? command : -EIO;
}

const char *bus_master_json(const char *slot)
{
	int command = command_register(slot);

	return command < 0 ? "null" : command & PCI_COMMAND_MASTER ? "true" : "false";
}

int memory_decoding_on(const char *slot)
{
	char path[128];
	uint16_t command;
	int fd, r = -EIO;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", slot);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, &command, sizeof(command), PCI_COMMAND) == sizeof(command)) {
		r = !!(command & PCI_COMMAND_MEMORY);
		command |= PCI_COMMAND_MEMORY;
		if (pwrite(fd, &command, sizeof(command), PCI_COMMAND) != sizeof(command))
			r = -EIO;
	}
	close(fd);
	return r;
}
