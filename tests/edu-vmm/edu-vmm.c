/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * liveupdate-edu-vmm: a VMM's device passthrough, reduced to what a test
 * can check. Its guest RAM is a memfd mapped into an iommufd IOAS with
 * IOMMU_IOAS_MAP_FILE (the mapping a live update must be able to carry
 * over), QEMU's edu device is opened through its VFIO device cdev, bound
 * to the iommufd and attached to an explicit paging HWPT, and the device
 * DMAs into guest RAM through its IOVA.
 *
 * Each round writes a fresh pattern into guest RAM, has edu copy it into
 * its own buffer and back out to a zeroed page, and compares: a round only
 * passes when the bytes went through the IOMMU both ways. One round at
 * start, one more per SIGUSR1, exit on SIGTERM. Every step is one JSON
 * line on stdout.
 *
 * The device must already be bound to vfio-pci; the test does that, as an
 * operator's tooling would.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vfio-uapi.h"

/* Guest RAM and where the device sees it; edu masks DMA addresses to 28 bits. */
#define RAM_SIZE (64u << 10)
#define IOVA_BASE 0x100000u
#define SRC_OFFSET 0x0000u /* the CPU writes the pattern here */
#define DST_OFFSET 0x1000u /* the device writes it back here */

/* QEMU's edu (docs/specs/edu.rst): BAR0 registers and its DMA buffer. */
#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2 /* edu buffer to RAM; clear: RAM to edu buffer */
#define EDU_DMA_BUFFER 0x40000u
#define EDU_ID_MAGIC 0xed /* low byte of the ID register */
/*
 * QEMU 7.2's edu checks a transfer's end one byte too strictly and aborts
 * the whole VM on a full 4 KiB one: stay at half.
 */
#define TRANSFER 2048u
/* A transfer completes 100 ms of guest time after its command. */
#define DMA_TIMEOUT_MS 10000

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

typedef struct Passthrough {
	int iommufd, device_fd, ram_fd;
	uint8_t *ram;
	volatile uint8_t *bar0;
	uint32_t dev_id, ioas_id, hwpt_id;
} Passthrough;

static void event_error(const char *what, int err)
{
	printf("{\"event\":\"error\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}\n", what, err,
	       strerror(err));
	fflush(stdout);
}

/* The name of the device cdev of slot: /sys/bus/pci/devices/SLOT/vfio-dev/vfioN. */
static int open_device_cdev(const char *slot)
{
	char dir[256], path[300];
	struct dirent *e;
	DIR *d;
	int fd = -ENOENT;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", slot);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "vfio", 4) == 0) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				fd = -errno;
			break;
		}
	closedir(d);
	return fd;
}

static int guest_ram_map(Passthrough *p)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.start = 0,
		.length = RAM_SIZE,
		.iova = IOVA_BASE,
	};

	p->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (p->ram_fd < 0 || ftruncate(p->ram_fd, RAM_SIZE) < 0)
		return -errno;
	p->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p->ram_fd, 0);
	if (p->ram == MAP_FAILED)
		return -errno;
	if (ioctl(p->iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0)
		return -errno;
	p->ioas_id = alloc.out_ioas_id;
	map.ioas_id = p->ioas_id;
	map.fd = p->ram_fd;
	return ioctl(p->iommufd, IOMMU_IOAS_MAP_FILE, &map) < 0 ? -errno : 0;
}

/* Bind the device to the iommufd and attach it to a paging HWPT over the IOAS. */
static int device_attach(Passthrough *p)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = p->iommufd };
	struct iommu_hwpt_alloc hwpt = { .size = sizeof(hwpt) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

	if (ioctl(p->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
		return -errno;
	p->dev_id = bind.out_devid;
	hwpt.dev_id = p->dev_id;
	hwpt.pt_id = p->ioas_id;
	if (ioctl(p->iommufd, IOMMU_HWPT_ALLOC, &hwpt) < 0)
		return -errno;
	p->hwpt_id = hwpt.out_hwpt_id;
	attach.pt_id = p->hwpt_id;
	return ioctl(p->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0 ? -errno : 0;
}

/* Memory decoding and bus mastering on, through the config region; map BAR0. */
static int device_enable(Passthrough *p)
{
	struct vfio_region_info config = { .argsz = sizeof(config),
					   .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar0 = { .argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t command;
	void *m;

	if (ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &config) < 0 ||
	    ioctl(p->device_fd, VFIO_DEVICE_GET_REGION_INFO, &bar0) < 0)
		return -errno;
	if (pread(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	command |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(p->device_fd, &command, sizeof(command), config.offset + PCI_COMMAND) !=
	    sizeof(command))
		return -EIO;
	m = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, p->device_fd, bar0.offset);
	if (m == MAP_FAILED)
		return -errno;
	p->bar0 = m;
	return 0;
}

/* Registers below 0x80 take 32-bit accesses only; edu reads others as all-ones. */
static uint32_t edu_read32(Passthrough *p, unsigned int reg)
{
	return *(volatile uint32_t *)(p->bar0 + reg);
}

static uint64_t edu_read(Passthrough *p, unsigned int reg)
{
	return *(volatile uint64_t *)(p->bar0 + reg);
}

static void edu_write(Passthrough *p, unsigned int reg, uint64_t value)
{
	*(volatile uint64_t *)(p->bar0 + reg) = value;
}

static int edu_dma(Passthrough *p, uint64_t src, uint64_t dst, uint64_t direction)
{
	edu_write(p, EDU_REG_DMA_SRC, src);
	edu_write(p, EDU_REG_DMA_DST, dst);
	edu_write(p, EDU_REG_DMA_COUNT, TRANSFER);
	edu_write(p, EDU_REG_DMA_CMD, direction | EDU_DMA_RUN);
	for (int ms = 0; ms < DMA_TIMEOUT_MS; ms += 10) {
		if (!(edu_read(p, EDU_REG_DMA_CMD) & EDU_DMA_RUN))
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	return -ETIMEDOUT;
}

static uint8_t pattern_byte(unsigned int round, size_t i)
{
	return (uint8_t)(round * 0x9e + i * 7 + (i >> 8) + 1);
}

/*
 * A fresh pattern at SRC goes RAM to edu to RAM at DST, which was zeroed:
 * what lands there can only have come through the IOMMU mapping, twice.
 */
static int dma_round(Passthrough *p, unsigned int round)
{
	uint8_t *src = p->ram + SRC_OFFSET, *dst = p->ram + DST_OFFSET;
	size_t bad = 0, first_bad = 0;
	int r;

	for (size_t i = 0; i < TRANSFER; i++)
		src[i] = pattern_byte(round, i);
	memset(dst, 0, TRANSFER);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	r = edu_dma(p, IOVA_BASE + SRC_OFFSET, EDU_DMA_BUFFER, 0);
	if (r == 0)
		r = edu_dma(p, EDU_DMA_BUFFER, IOVA_BASE + DST_OFFSET, EDU_DMA_TO_RAM);
	if (r < 0) {
		event_error("dma", -r);
		return r;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (size_t i = 0; i < TRANSFER; i++)
		if (dst[i] != pattern_byte(round, i) && bad++ == 0)
			first_bad = i;
	printf("{\"event\":\"dma\",\"round\":%u,\"iova\":\"0x%x\",\"bytes\":%u,\"bad_bytes\":%zu",
	       round, IOVA_BASE + DST_OFFSET, TRANSFER, bad);
	if (bad)
		printf(",\"first_bad\":%zu", first_bad);
	printf("}\n");
	fflush(stdout);
	return bad ? -EIO : 0;
}

static int passthrough_open(Passthrough *p, const char *slot)
{
	uint32_t id;
	int r;

	*p = (Passthrough){ .iommufd = -1, .device_fd = -1, .ram_fd = -1 };
	r = open_device_cdev(slot);
	if (r < 0) {
		event_error("open the VFIO device cdev", -r);
		return r;
	}
	p->device_fd = r;
	p->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (p->iommufd < 0) {
		r = -errno;
		event_error("open /dev/iommu", -r);
		return r;
	}
	r = guest_ram_map(p);
	if (r < 0) {
		event_error("map guest RAM into an IOAS", -r);
		return r;
	}
	r = device_attach(p);
	if (r < 0) {
		event_error("attach the device to a HWPT", -r);
		return r;
	}
	r = device_enable(p);
	if (r < 0) {
		event_error("enable the device", -r);
		return r;
	}
	id = edu_read32(p, EDU_REG_ID);
	if ((id & 0xff) != EDU_ID_MAGIC) {
		event_error("not an edu device", ENODEV);
		return -ENODEV;
	}
	printf("{\"event\":\"attached\",\"slot\":\"%s\",\"dev_id\":%u,\"ioas_id\":%u,"
	       "\"hwpt_id\":%u,\"iova\":\"0x%x\",\"ram_bytes\":%u}\n",
	       slot, p->dev_id, p->ioas_id, p->hwpt_id, IOVA_BASE, RAM_SIZE);
	fflush(stdout);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: liveupdate-edu-vmm --slot DDDD:BB:DD.F\n"
		   "DMA rounds through QEMU's edu device bound to vfio-pci: one at start,\n"
		   "one per SIGUSR1; SIGTERM ends it. Events are JSON lines on stdout.\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "slot", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *slot = NULL;
	unsigned int round = 1;
	Passthrough p;
	sigset_t signals;
	int c, sig;

	while ((c = getopt_long(argc, argv, "s:h", options, NULL)) >= 0)
		switch (c) {
		case 's':
			slot = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	if (!slot || optind != argc) {
		usage(stderr);
		return 2;
	}

	/* blocked before anything can send them, and taken with sigwait */
	sigemptyset(&signals);
	sigaddset(&signals, SIGUSR1);
	sigaddset(&signals, SIGTERM);
	sigprocmask(SIG_BLOCK, &signals, NULL);

	if (passthrough_open(&p, slot) < 0 || dma_round(&p, round) < 0)
		return 1;
	for (;;) {
		if (sigwait(&signals, &sig) != 0)
			return 1;
		if (sig == SIGTERM)
			break;
		if (dma_round(&p, ++round) < 0)
			return 1;
	}
	printf("{\"event\":\"stopped\",\"rounds\":%u}\n", round);
	return 0;
}
