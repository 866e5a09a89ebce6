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
 * With --vm-id it is also a VMM of liveupdated (libliveupdate-vmm), whose
 * VM keeps its passed-through device across a live update, DMAing all
 * along (edu-vmm-daemon.c and the files edu-vmm.h lists). Its events are
 * then also in the kernel log, prefixed "edu-vmm: " (events.c), where the
 * e2e test reads them.
 *
 * The device must already be bound to vfio-pci; the test does that, as an
 * operator's tooling would.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "edu-vmm.h"
#include "edu.h"
#include "events.h"
#include "handover-clock.h"
#include "pattern.h"

/* Standalone mode's guest RAM; the IOVA its rounds land at is in recorded logs. */
#define SRC_OFFSET 0x0000u /* the CPU writes the pattern here */
#define DST_OFFSET 0x1000u /* the device writes it back here */

int vm_attach(Passthrough *p, const char *slot)
{
	const char *step;
	int r;

	r = passthrough_open(p, slot, &step);
	if (r < 0) {
		event_error(step, -r);
		return r;
	}
	emit("{\"event\":\"attached\",\"slot\":\"%s\",\"dev_id\":%u,\"ioas_id\":%u,"
	     "\"hwpt_id\":%u,\"iova\":\"0x%x\",\"ram_bytes\":%u}",
	     slot, p->dev_id, p->ioas_id, p->hwpt_id, GUEST_RAM_IOVA, GUEST_RAM_SIZE);
	return 0;
}

/*
 * A fresh pattern at SRC goes RAM to edu to RAM at DST, which was zeroed:
 * what lands there can only have come through the IOMMU mapping, twice.
 */
static int dma_round(Passthrough *p, unsigned int round)
{
	uint8_t *dst = p->ram + DST_OFFSET;
	size_t bad, first_bad = 0;
	char first_bad_json[40] = "";
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
	if (bad)
		snprintf(first_bad_json, sizeof(first_bad_json), ",\"first_bad\":%zu", first_bad);
	emit("{\"event\":\"dma\",\"round\":%u,\"iova\":\"0x%x\",\"bytes\":%u,\"bad_bytes\":%zu%s}",
	     round, GUEST_RAM_IOVA + DST_OFFSET, EDU_TRANSFER, bad, first_bad_json);
	return bad ? -EIO : 0;
}

/* Standalone mode: events on stdout only, as e2e-vfio-refused and its recorded log have them. */
static int run_standalone(const char *slot)
{
	unsigned int round = 1;
	Passthrough p;
	sigset_t signals;
	int sig;

	/* blocked before anything can send them, and taken with sigwait */
	sigemptyset(&signals);
	sigaddset(&signals, SIGUSR1);
	sigaddset(&signals, SIGTERM);
	sigprocmask(SIG_BLOCK, &signals, NULL);

	if (vm_attach(&p, slot) < 0 || dma_round(&p, round) < 0)
		return EXIT_ERROR;
	for (;;) {
		if (sigwait(&signals, &sig) != 0)
			return EXIT_ERROR;
		if (sig == SIGTERM)
			break;
		if (dma_round(&p, ++round) < 0)
			return EXIT_ERROR;
	}
	emit("{\"event\":\"stopped\",\"rounds\":%u}", round);
	return EXIT_OK;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: liveupdate-edu-vmm --slot DDDD:BB:DD.F\n"
		   "       liveupdate-edu-vmm --slot DDDD:BB:DD.F --vm-id ID [--socket PATH]\n"
		   "                          [--hold-resume]\n"
		   "DMA rounds through QEMU's edu device bound to vfio-pci: one at start,\n"
		   "one per SIGUSR1; SIGTERM ends it. Events are JSON lines on stdout.\n\n"
		   "With --vm-id, also a VMM of liveupdated (--socket: its VMM socket, default\n"
		   "$LIVEUPDATED_VMM_SOCKET or /run/liveupdated/vmm.sock): the device, its\n"
		   "iommufd and guest RAM are preserved across a live update, a DMA is in\n"
		   "flight through the kexec, and started again with the same id after it,\n"
		   "the VMM takes the running device over, checks its DMA through the\n"
		   "handed-over tables, rebuilds its domain and resumes (the daemon's FINISH\n"
		   "moves the device to it), then checks a DMA through the new domain.\n"
		   "Events are then also in the kernel log (\"edu-vmm: \"). --hold-resume: after\n"
		   "the restore, RESUMED waits for SIGUSR2.\n\n"
		   "Exit status: 0 SIGTERM or SIGINT, 1 error, 2 usage, 4 the daemon is gone.\n");
}

int main(int argc, char **argv)
{
	enum { ARG_VM_ID = 0x100, ARG_SOCKET, ARG_HOLD_RESUME };
	static const struct option options[] = {
		{ "slot", required_argument, NULL, 's' },
		{ "vm-id", required_argument, NULL, ARG_VM_ID },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "hold-resume", no_argument, NULL, ARG_HOLD_RESUME },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	EduVmm e = { .p = { .iommufd = -1, .device_fd = -1, .ram_fd = -1 } };
	int c, code;

	/* the calibration of the TSC is over our whole life: start it first */
	(void)handover_clock_init();
	while ((c = getopt_long(argc, argv, "s:h", options, NULL)) >= 0)
		switch (c) {
		case 's':
			e.slot = optarg;
			break;
		case ARG_VM_ID:
			e.vm_id = optarg;
			break;
		case ARG_SOCKET:
			e.socket = optarg;
			break;
		case ARG_HOLD_RESUME:
			e.hold_resume = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	if (!e.slot || optind != argc || (!e.vm_id && (e.socket || e.hold_resume))) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!e.vm_id)
		return run_standalone(e.slot);

	events_init("edu-vmm: ");
	code = run_daemon_mode(&e);
	lu_vmm_free(e.vmm);
	return code;
}
