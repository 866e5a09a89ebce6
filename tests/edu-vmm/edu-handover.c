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
 * the buffer into guest RAM without waiting for it and kexec. edu runs a
 * DMA 100 ms of guest time after its command, so it lands while the
 * machine is going through the kexec.
 *
 * New kernel (--retrieve): retrieve the session and guest RAM; the DMA
 * started before the kexec must be there. The device was not reset and its
 * buffer still holds the pattern; a DMA of it to another IOVA must land
 * through the page tables the new kernel adopted. FINISH the session: the
 * handler drops the adopted translation and the old page tables are freed,
 * measured as the fall of nr_iommu_pages in /proc/vmstat.
 *
 * Refused (--handover-version N, then --retrieve --refused): the old kernel
 * hands over an IOMMU state that says version N, as a kernel with another
 * layout would; the new kernel must refuse it and make the device safe
 * instead of trusting its tables: guest RAM is intact, the device cannot be
 * retrieved, its bus mastering is off and a DMA it is asked for lands
 * nowhere.
 *
 * Every step is one JSON line on stdout; the exit status is 0 only when
 * every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "events.h"
#include "guest-kernel.h"
#include "in-flight.h"
#include "luo.h"
#include "own-session.h"
#include "passthrough.h"
#include "pattern.h"

#define SESSION_NAME "edu-handover"
#define TOKEN_RAM 1
#define TOKEN_DEVICE 2
#define TEST_DEVICE_PATH "/sys/kernel/debug/iommu/liveupdate/test_device"
#define HANDOVER_VERSION_PATH "/sys/kernel/debug/iommu/liveupdate/handover_version"

/* Guest RAM layout: each check writes where nothing else does. */
#define BEFORE_SRC 0x0000u     /* step 1: the CPU's pattern */
#define BEFORE_DST 0x1000u     /* step 1: the device's copy */
#define IN_FLIGHT_DST 0x2000u  /* step 2: the DMA under way during the kexec */
#define IN_FLIGHT_SRC 0x2800u  /* step 2: the CPU's pattern, loaded into edu */
#define OLD_TABLES_DST 0x3000u /* step 3: through the adopted tables */
#define SEED_BEFORE 1
#define SEED_IN_FLIGHT 2

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

/* Make the handed-over IOMMU state say another version (the test handler's knob). */
static int override_handover_version(unsigned int version)
{
	char buf[16];
	int fd, n, r;

	fd = open(HANDOVER_VERSION_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%u", version);
	r = write(fd, buf, n) == n ? 0 : -errno;
	close(fd);
	return r;
}

static int run_old_kernel(const char *slot, const char *image, const char *initrd,
			  const char *append, unsigned int handover_version)
{
	const char *step;
	Passthrough p;
	int session, r;

	session = own_session_create(SESSION_NAME);
	if (session < 0)
		return 1;

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
	if (handover_version) {
		r = override_handover_version(handover_version);
		if (r < 0) {
			event_error("override the hand-over version", -r);
			return 1;
		}
		emit("{\"event\":\"version-override\",\"version\":%u}", handover_version);
	}

	memset(p.ram + OLD_TABLES_DST, 0, EDU_TRANSFER);
	/* the edu buffer holds the pattern of step 2 (and, unreset, of step 3) */
	if (in_flight_load(&p, IN_FLIGHT_SRC, IN_FLIGHT_DST, SEED_IN_FLIGHT) < 0)
		return 1;
	in_flight_kexec(&p, IN_FLIGHT_DST, image, initrd, append);
	return 1;
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

/* The unreset device's BAR0, checked to be an edu's; NULL after an error event. */
static volatile uint8_t *take_bar0(const char *slot)
{
	volatile uint8_t *bar0 = map_bar0(slot);

	if (!bar0 || edu_check(bar0) < 0) {
		event_error("map the device's BAR0", bar0 ? ENODEV : errno);
		return NULL;
	}
	return bar0;
}

static int run_new_kernel(const char *slot)
{
	char device_state[128] = "";
	volatile uint8_t *bar0;
	long pages_before, pages_after;
	int session, device_fd, r;
	Passthrough p; /* guest RAM only: BAR0 comes through sysfs */
	bool ok, zero;
	ssize_t n;

	session = own_session_retrieve_ram(SESSION_NAME, TOKEN_RAM, &p);
	if (session < 0)
		return 1;

	/* step 2: the DMA started just before the kexec */
	ok = in_flight_check(p.ram, IN_FLIGHT_DST, SEED_IN_FLIGHT);

	/* step 3: the unreset device, through the old page tables */
	bar0 = take_bar0(slot);
	if (!bar0)
		return 1;
	zero = all_zero(p.ram + OLD_TABLES_DST);
	r = edu_dma(bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + OLD_TABLES_DST, EDU_TO_RAM);
	if (r < 0) {
		event_error("dma through the adopted tables", -r);
		return 1;
	}
	ok &= event_check("old-tables", p.ram, OLD_TABLES_DST, SEED_IN_FLIGHT, zero);

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
	emit("{\"event\":\"finished\",\"device\":\"%s\",\"iommu_pages_before\":%ld,"
	     "\"iommu_pages_after\":%ld,\"bus_master\":%s}",
	     device_state, pages_before, pages_after, bus_master_json(slot));
	return ok ? 0 : 1;
}

/*
 * The new kernel refused the handed-over IOMMU state (--handover-version
 * gave it one it does not know): guest RAM is intact, the device cannot be
 * retrieved, it was made safe (bus mastering and memory decoding off), and
 * with memory decoding turned on again to ask it for a DMA, that DMA goes
 * nowhere.
 */
static int run_new_kernel_refused(const char *slot)
{
	int session, device_fd, decoding, r;
	volatile uint8_t *bar0;
	size_t bad, first_bad;
	Passthrough p; /* guest RAM only, as in run_new_kernel() */
	const char *bm;
	bool landed;

	session = own_session_retrieve_ram(SESSION_NAME, TOKEN_RAM, &p);
	if (session < 0)
		return 1;
	bad = pattern_mismatches(p.ram + BEFORE_DST, SEED_BEFORE, &first_bad);
	emit("{\"event\":\"ram-intact\",\"bad_bytes\":%zu}", bad);

	device_fd = luo_retrieve_fd(session, TOKEN_DEVICE);
	emit("{\"event\":\"retrieve-refused\",\"errno\":%d}", device_fd < 0 ? -device_fd : 0);
	if (device_fd >= 0)
		close(device_fd);

	/* the device's buffer still holds a pattern: a DMA must not land */
	decoding = memory_decoding_on(slot);
	if (decoding < 0) {
		event_error("turn the device's memory decoding on", -decoding);
		return 1;
	}
	bar0 = take_bar0(slot);
	if (!bar0)
		return 1;
	memset(p.ram + OLD_TABLES_DST, 0, EDU_TRANSFER);
	r = edu_dma(bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + OLD_TABLES_DST, EDU_TO_RAM);
	landed = !all_zero(p.ram + OLD_TABLES_DST);
	bm = bus_master_json(slot);
	emit("{\"event\":\"dma-blocked\",\"memory_decoding_was\":%s,\"completed\":%s,"
	     "\"landed\":%s,\"bus_master\":%s}",
	     decoding ? "true" : "false", r == 0 ? "true" : "false", landed ? "true" : "false", bm);

	r = luo_finish(session);
	if (r < 0) {
		event_error("finish the session", -r);
		return 1;
	}
	emit("{\"event\":\"finished\"}");
	return bad == 0 && device_fd < 0 && !landed && strcmp(bm, "false") == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: liveupdate-edu-handover --slot SLOT --kexec IMAGE [--initrd FILE] "
		   "[--append WORDS] [--handover-version N]\n"
		   "       liveupdate-edu-handover --slot SLOT --retrieve [--refused]\n"
		   "Hands QEMU's edu device (bound to vfio-pci) over across a kexec with the\n"
		   "iommu-lu-test handler and checks its DMA on both sides. With\n"
		   "--handover-version the hand-over says version N, which the next kernel\n"
		   "must refuse (--refused checks that it did, safely).\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "slot", required_argument, NULL, 's' },
		{ "kexec", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "retrieve", no_argument, NULL, 'r' },
		{ "handover-version", required_argument, NULL, 'v' },
		{ "refused", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *slot = NULL, *image = NULL, *initrd = NULL, *append = NULL;
	bool retrieve = false, refused = false;
	unsigned int handover_version = 0;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "s:k:i:a:rv:Rh", options, NULL)) >= 0)
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
		case 'v':
			errno = 0;
			handover_version = strtoul(optarg, &end, 10);
			if (errno || *end || !handover_version) {
				usage(stderr);
				return 2;
			}
			break;
		case 'R':
			refused = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	if (!slot || optind != argc || retrieve == !!image || (refused && !retrieve) ||
	    (handover_version && retrieve)) {
		usage(stderr);
		return 2;
	}
	events_init("edu-handover: ");
	if (retrieve)
		return refused ? run_new_kernel_refused(slot) : run_new_kernel(slot);
	return run_old_kernel(slot, image, initrd, append, handover_version);
}
