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
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "edu.h"
#include "passthrough.h"
#include "pattern.h"

#define SRC_OFFSET 0x0000u /* the CPU writes the pattern here */
#define DST_OFFSET 0x1000u /* the device writes it back here */

static void event_error(const char *what, int err)
{
	printf("{\"event\":\"error\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}\n", what, err,
	       strerror(err));
	fflush(stdout);
}

/*
 * A fresh pattern at SRC goes RAM to edu to RAM at DST, which was zeroed:
 * what lands there can only have come through the IOMMU mapping, twice.
 */
static int dma_round(Passthrough *p, unsigned int round)
{
	uint8_t *dst = p->ram + DST_OFFSET;
	size_t bad, first_bad = 0;
	int r;

	pattern_fill(p->ram + SRC_OFFSET, round);
	memset(dst, 0, EDU_TRANSFER);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	r = edu_dma(p->bar0, GUEST_RAM_IOVA + SRC_OFFSET, EDU_DMA_BUFFER, EDU_TO_DEVICE);
	if (r == 0)
		r = edu_dma(p->bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + DST_OFFSET, EDU_TO_RAM);
	if (r < 0) {
		event_error("dma", -r);
		return r;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	bad = pattern_mismatches(dst, round, &first_bad);
	printf("{\"event\":\"dma\",\"round\":%u,\"iova\":\"0x%x\",\"bytes\":%u,\"bad_bytes\":%zu",
	       round, GUEST_RAM_IOVA + DST_OFFSET, EDU_TRANSFER, bad);
	if (bad)
		printf(",\"first_bad\":%zu", first_bad);
	printf("}\n");
	fflush(stdout);
	return bad ? -EIO : 0;
}

static int attach(Passthrough *p, const char *slot)
{
	const char *step;
	int r;

	r = passthrough_open(p, slot, &step);
	if (r < 0) {
		event_error(step, -r);
		return r;
	}
	printf("{\"event\":\"attached\",\"slot\":\"%s\",\"dev_id\":%u,\"ioas_id\":%u,"
	       "\"hwpt_id\":%u,\"iova\":\"0x%x\",\"ram_bytes\":%u}\n",
	       slot, p->dev_id, p->ioas_id, p->hwpt_id, GUEST_RAM_IOVA, GUEST_RAM_SIZE);
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

	if (attach(&p, slot) < 0 || dma_round(&p, round) < 0)
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
