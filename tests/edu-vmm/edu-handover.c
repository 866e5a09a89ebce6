/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * liveupdate-edu-handover: a passed-through device handed over across a
 * real kexec, with its DMA translating all the way. The test-only
 * iommu-lu-test file handler (kernel/patches/0010) stands in for the
 * iommufd and vfio-pci handlers, which do not exist yet: preserving its
 * debugfs file, written with a slot, preserves that device and the domain
 * it is attached to.
 *
 * Old kernel (--kexec IMAGE): the device cannot be preserved before a VMM
 * attaches it to a domain of its own (EINVAL). Pass edu through
 * (passthrough.c) and check a DMA round trip through its IOVA; preserve
 * guest RAM (the memfd) and the device in a LUO session; load the edu
 * buffer with a pattern; load IMAGE with kexec_file_load; start a DMA of
 * the buffer into guest RAM without waiting for it and kexec. edu runs a DMA 100 ms of guest time after its
 * command, so it lands while the machine is going through the kexec.
 *
 * New kernel (--retrieve): retrieve the session and guest RAM; the DMA
 * started before the kexec must be there. The device was not reset and its
 * buffer still holds the pattern; a DMA of it to another IOVA must land
 * through the page tables the new kernel adopted. FINISH the session: the
 * handler drops the adopted translation and the old page tables are freed,
 * measured as the fall of nr_iommu_pages in /proc/vmstat.
 *
 * Every step is one JSON line on stdout; the exit status is 0 only when
 * every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmdline.h"
#include "edu.h"
#include "kexec.h"
#include "luo.h"
#include "macro.h"
#include "passthrough.h"
#include "pattern.h"

#define SESSION_NAME "edu-handover"
#define TOKEN_RAM 1
#define TOKEN_DEVICE 2
#define TEST_DEVICE_PATH "/sys/kernel/debug/iommu/liveupdate/test_device"

/* Guest RAM layout: each check writes where nothing else does. */
#define BEFORE_SRC 0x0000u     /* step 1: the CPU's pattern */
#define BEFORE_DST 0x1000u     /* step 1: the device's copy */
#define IN_FLIGHT_DST 0x2000u  /* step 2: the DMA under way during the kexec */
#define IN_FLIGHT_SRC 0x2800u  /* step 2: the CPU's pattern, loaded into edu */
#define OLD_TABLES_DST 0x3000u /* step 3: through the adopted tables */
#define SEED_BEFORE 1
#define SEED_IN_FLIGHT 2

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MASTER 0x4

/*
 * One event: a JSON line on stdout, and the same into the kernel log. The
 * serial console interleaves the kernel's messages into a userspace line
 * printed at the same moment (preserving and kexecing print plenty); a
 * kernel log record is never split, so the test reads the events there.
 */
static void _printf_(1, 2) emit(const char *fmt, ...)
{
	char line[512], record[600];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s\n", line);
	fflush(stdout);
	/* one write, one record */
	n = snprintf(record, sizeof(record), "<6>edu-handover: %s\n", line);
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, record, (size_t)n);
		close(fd);
	}
}

static void event_error(const char *what, int err)
{
	emit("{\"event\":\"error\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}", what, err,
	     strerror(err));
}

/* A check of EDU_TRANSFER bytes of guest RAM against a pattern. */
static bool event_check(const char *step, const uint8_t *ram, unsigned int offset,
			unsigned int seed, bool zero_before)
{
	size_t first_bad = 0, bad = pattern_mismatches(ram + offset, seed, &first_bad);

	emit("{\"event\":\"dma\",\"step\":\"%s\",\"iova\":\"0x%x\",\"bytes\":%u,"
	     "\"zero_before\":%s,\"bad_bytes\":%zu,\"first_bad\":%zd}",
	     step, GUEST_RAM_IOVA + offset, EDU_TRANSFER, zero_before ? "true" : "false", bad,
	     bad ? (ssize_t)first_bad : -1);
	return bad == 0 && zero_before;
}

static bool all_zero(const uint8_t *p)
{
	for (size_t i = 0; i < EDU_TRANSFER; i++)
		if (p[i])
			return false;
	return true;
}

static int preserve_device(int session, const char *slot)
{
	int fd, r;

	fd = open(TEST_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write(fd, slot, strlen(slot)) < 0 ? -errno : luo_preserve_fd(session, fd, TOKEN_DEVICE);
	/* once preserved, the session holds the file; our fd stays open too */
	if (r < 0)
		close(fd);
	return r;
}

static int load_next_kernel(const char *image, const char *initrd, const char *append)
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

static int run_old_kernel(const char *slot, const char *image, const char *initrd,
			  const char *append)
{
	const char *step;
	Passthrough p;
	int luo, session, r;

	luo = luo_open(NULL);
	session = luo < 0 ? luo : luo_create_session(luo, SESSION_NAME);
	if (session < 0) {
		event_error("create a LUO session", -session);
		return 1;
	}

	/*
	 * Refused: bound to vfio-pci but not yet attached by a VMM, the device
	 * is on the kernel's own DMA domain, which is not to be handed over.
	 */
	r = preserve_device(session, slot);
	emit("{\"event\":\"refused\",\"errno\":%d,\"message\":\"%s\"}", r < 0 ? -r : 0,
	     r < 0 ? strerror(-r) : "preserved");
	if (r != -EINVAL)
		return 1;

	r = passthrough_open(&p, slot, &step);
	if (r < 0) {
		event_error(step, -r);
		return 1;
	}
	emit("{\"event\":\"attached\",\"slot\":\"%s\",\"dev_id\":%u,\"ioas_id\":%u,\"hwpt_id\":%u}",
	     slot, p.dev_id, p.ioas_id, p.hwpt_id);

	/* step 1: RAM to edu to RAM through the IOVA, as any passthrough does */
	pattern_fill(p.ram + BEFORE_SRC, SEED_BEFORE);
	r = edu_dma(p.bar0, GUEST_RAM_IOVA + BEFORE_SRC, EDU_DMA_BUFFER, EDU_TO_DEVICE);
	if (r == 0)
		r = edu_dma(p.bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + BEFORE_DST, EDU_TO_RAM);
	if (r < 0) {
		event_error("dma before the update", -r);
		return 1;
	}
	if (!event_check("before", p.ram, BEFORE_DST, SEED_BEFORE, true))
		return 1;

	r = luo_preserve_fd(session, p.ram_fd, TOKEN_RAM);
	if (r < 0) {
		event_error("preserve guest RAM", -r);
		return 1;
	}
	r = preserve_device(session, slot);
	if (r < 0) {
		event_error("preserve the device", -r);
		return 1;
	}
	emit("{\"event\":\"preserved\",\"session\":\"%s\"}", SESSION_NAME);

	/* the edu buffer holds the pattern of step 2 (and, unreset, of step 3) */
	pattern_fill(p.ram + IN_FLIGHT_SRC, SEED_IN_FLIGHT);
	memset(p.ram + IN_FLIGHT_DST, 0, EDU_TRANSFER);
	memset(p.ram + OLD_TABLES_DST, 0, EDU_TRANSFER);
	r = edu_dma(p.bar0, GUEST_RAM_IOVA + IN_FLIGHT_SRC, EDU_DMA_BUFFER, EDU_TO_DEVICE);
	if (r < 0) {
		event_error("load the edu buffer", -r);
		return 1;
	}

	r = load_next_kernel(image, initrd, append);
	if (r < 0) {
		event_error("load the next kernel", -r);
		return 1;
	}
	emit("{\"event\":\"kexec\",\"image\":\"%s\"}", image);
	sync();
	edu_dma_start(p.bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + IN_FLIGHT_DST, EDU_TO_RAM);
	r = kexec_reboot();
	event_error("kexec", -r);
	return 1;
}

/*
 * A counter of /proc/vmstat, exact: the kernel keeps per-CPU deltas and
 * folds them in only every second, unless told to now (vm.stat_refresh).
 */
static long vmstat(const char *name)
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

/* BAR0 through sysfs: the device file of vfio-pci must not be opened, that resets it. */
static volatile uint8_t *map_bar0(const char *slot)
{
	char path[128];
	void *m;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", slot);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	m = mmap(NULL, EDU_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
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

static int run_new_kernel(const char *slot)
{
	char device_state[128] = "";
	volatile uint8_t *bar0;
	long pages_before, pages_after;
	int luo, session, ram_fd, device_fd, command, r;
	bool ok, zero;
	uint8_t *ram;
	ssize_t n;

	luo = luo_open(NULL);
	session = luo < 0 ? luo : luo_retrieve_session(luo, SESSION_NAME);
	ram_fd = session < 0 ? session : luo_retrieve_fd(session, TOKEN_RAM);
	if (ram_fd < 0) {
		event_error("retrieve guest RAM", -ram_fd);
		return 1;
	}
	ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
	if (ram == MAP_FAILED) {
		event_error("map guest RAM", errno);
		return 1;
	}

	/* step 2: the DMA started just before the kexec */
	ok = event_check("in-flight", ram, IN_FLIGHT_DST, SEED_IN_FLIGHT, true);

	/* step 3: the unreset device, through the old page tables */
	bar0 = map_bar0(slot);
	if (!bar0 || edu_check(bar0) < 0) {
		event_error("map the device's BAR0", bar0 ? ENODEV : errno);
		return 1;
	}
	zero = all_zero(ram + OLD_TABLES_DST);
	r = edu_dma(bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + OLD_TABLES_DST, EDU_TO_RAM);
	if (r < 0) {
		event_error("dma through the adopted tables", -r);
		return 1;
	}
	ok &= event_check("old-tables", ram, OLD_TABLES_DST, SEED_IN_FLIGHT, zero);

	device_fd = luo_retrieve_fd(session, TOKEN_DEVICE);
	if (device_fd < 0) {
		event_error("retrieve the device", -device_fd);
		return 1;
	}
	n = read(device_fd, device_state, sizeof(device_state) - 1);
	device_state[n > 0 ? n : 0] = '\0';
	device_state[strcspn(device_state, "\n\"\\")] = '\0';
	close(device_fd);

	pages_before = vmstat("nr_iommu_pages");
	r = luo_finish(session);
	if (r < 0) {
		event_error("finish the session", -r);
		return 1;
	}
	pages_after = vmstat("nr_iommu_pages");
	command = command_register(slot);
	emit("{\"event\":\"finished\",\"device\":\"%s\",\"iommu_pages_before\":%ld,"
	     "\"iommu_pages_after\":%ld,\"bus_master\":%s}",
	     device_state, pages_before, pages_after,
	     command < 0 ? "null" : command & PCI_COMMAND_MASTER ? "true" : "false");
	return ok ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: liveupdate-edu-handover --slot SLOT --kexec IMAGE [--initrd FILE] "
		   "[--append WORDS]\n"
		   "       liveupdate-edu-handover --slot SLOT --retrieve\n"
		   "Hands QEMU's edu device (bound to vfio-pci) over across a kexec with the\n"
		   "iommu-lu-test handler and checks its DMA on both sides.\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "slot", required_argument, NULL, 's' },
		{ "kexec", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "retrieve", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *slot = NULL, *image = NULL, *initrd = NULL, *append = NULL;
	bool retrieve = false;
	int c;

	while ((c = getopt_long(argc, argv, "s:k:i:a:rh", options, NULL)) >= 0)
		switch (c) {
		case 's':
			slot = optarg;
			break;
		case 'k':
			image = optarg;
			break;
		case 'i':
			initrd = optarg;
			break;
		case 'a':
			append = optarg;
			break;
		case 'r':
			retrieve = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	if (!slot || optind != argc || retrieve == !!image) {
		usage(stderr);
		return 2;
	}
	return retrieve ? run_new_kernel(slot) : run_old_kernel(slot, image, initrd, append);
}
