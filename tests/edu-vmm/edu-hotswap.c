/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * liveupdate-edu-hotswap: a passed-through device handed over across a
 * real kexec by the iommufd and vfio-pci live update file handlers, taken
 * over by the VMM of the new kernel, and moved to a domain of its own
 * while it keeps doing DMA.
 *
 * Old kernel (--kexec IMAGE): pass edu through (passthrough.c) and check a
 * DMA round trip through its IOVA; mark its HWPT to be handed over
 * (IOMMU_HWPT_LU_SET_PRESERVE). Preserving has an order: the iommufd needs
 * the memfd that its marked HWPT maps preserved first in the session, the
 * device needs its iommufd. Both out of order are refused (ENOLINK) and
 * must leave everything as it was: a DMA round trip after them lands.
 * Preserve guest RAM (the memfd), the iommufd and the device in that order
 * in one LUO session; load the edu buffer with a pattern; load IMAGE with
 * kexec_file_load; start a DMA of the buffer into guest RAM without
 * waiting for it and kexec. edu runs a DMA 100 ms of guest time after its
 * command, so it lands while the machine is going through the kexec.
 *
 * New kernel (--retrieve): retrieve the session and guest RAM; the DMA
 * started before the kexec must be there. Retrieve the iommufd (a new,
 * empty one) and the device file: binding the one to the other takes the
 * running device over, without a reset; BAR0 is mapped through the device
 * file and the command register left alone. The device's buffer still
 * holds the pattern: a DMA of it to another IOVA must land through the
 * handed-over page tables. FINISH is refused (EBUSY) while the device has
 * no new domain, and again with a wrong one (guest RAM a page off). Rebuild
 * the domain as it was before the update: an IOAS with the retrieved memfd
 * at the same IOVA, a HWPT over it, the device attached to that (replacing
 * the wrong one, destroyed then). The kernel keeps the device on the
 * handed-over tables until the session is finished, so a DMA still lands.
 * FINISH the session: the device is swapped to the new domain, the
 * handed-over page tables are freed (measured as the fall of
 * nr_iommu_pages in /proc/vmstat) and bus mastering stays on, the device
 * being in use. A fresh pattern RAM to edu to RAM must then land through
 * the new domain.
 *
 * Every step is one JSON line on stdout and in the kernel log (events.c);
 * the exit status is 0 only when every check passed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "guest-kernel.h"
#include "in-flight.h"
#include "luo.h"
#include "own-session.h"
#include "passthrough.h"
#include "preserved-files.h"

#define SESSION_NAME "edu-hotswap"

/*
 * Guest RAM layout: one 4 KiB page per DMA check, written by nothing else.
 * The device copies to the start of the page; a check whose pattern comes
 * from the CPU (RAM to edu to RAM) has it in the second half, EDU_TRANSFER
 * (2 KiB) each.
 */
#define BEFORE_DST 0x0000u        /* the round trip before anything is preserved */
#define BEFORE_SRC 0x0800u
#define AFTER_REFUSAL_DST 0x1000u /* the round trip after the refused preserves */
#define AFTER_REFUSAL_SRC 0x1800u
#define IN_FLIGHT_DST 0x2000u     /* the DMA under way during the kexec */
#define IN_FLIGHT_SRC 0x2800u     /* its pattern, loaded into edu before */
#define OLD_TABLES_DST 0x3000u    /* taken over: through the handed-over tables */
#define BEFORE_FINISH_DST 0x4000u /* rebuilt, not finished: still through them */
#define NEW_DOMAIN_DST 0x5000u    /* finished: through the new domain */
#define NEW_DOMAIN_SRC 0x5800u
#define WRONG_RAM_OFFSET 0x1000u  /* a rebuilt IOAS with guest RAM a page off */

#define SEED_BEFORE 1
#define SEED_IN_FLIGHT 2 /* also of old-tables and before-finish: edu keeps it */
#define SEED_NEW_DOMAIN 3
#define SEED_AFTER_REFUSAL 4

/* A preserve out of order: refused with ENOLINK, or the run fails. */
static bool refused(int session, int fd, uint64_t token, const char *what)
{
	int r = luo_preserve_fd(session, fd, token);

	emit("{\"event\":\"refused\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}", what,
	     r < 0 ? -r : 0, r < 0 ? strerror(-r) : "preserved");
	return r == -ENOLINK;
}

/* A PreserveFd: into our own session. */
static int preserve_in_session(void *session, int fd, uint64_t token)
{
	return luo_preserve_fd(*(const int *)session, fd, token);
}

static int run_old_kernel(const char *slot, const char *image, const char *initrd,
			  const char *append)
{
	const char *step;
	Passthrough p;
	int session, r;

	session = own_session_create(SESSION_NAME);
	if (session < 0)
		return 1;

	r = passthrough_open(&p, slot, &step);
	if (r < 0) {
		event_error(step, -r);
		return 1;
	}
	emit("{\"event\":\"attached\",\"slot\":\"%s\",\"dev_id\":%u,\"ioas_id\":%u,\"hwpt_id\":%u}",
	     slot, p.dev_id, p.ioas_id, p.hwpt_id);
	if (event_dma(&p, "before", BEFORE_SRC, BEFORE_DST, SEED_BEFORE) != 1)
		return 1;

	r = passthrough_mark_for_update(&p);
	if (r < 0) {
		event_error("mark the HWPT for the update", -r);
		return 1;
	}
	emit("{\"event\":\"marked\",\"hwpt_id\":%u}", p.hwpt_id);

	/*
	 * Refused: the marked HWPT maps a memfd not preserved yet; the
	 * device's iommufd is not preserved yet. Neither may leave anything
	 * preserved, frozen or stopped: the device still DMAs after them.
	 */
	if (!refused(session, p.iommufd, TOKEN_IOMMUFD, "iommufd-before-memory") ||
	    !refused(session, p.device_fd, TOKEN_DEVICE, "device-before-iommufd"))
		return 1;
	if (event_dma(&p, "after-refusal", AFTER_REFUSAL_SRC, AFTER_REFUSAL_DST,
		      SEED_AFTER_REFUSAL) != 1)
		return 1;

	if (preserve_passthrough(&p, preserve_in_session, &session) < 0)
		return 1;
	emit("{\"event\":\"preserved\",\"session\":\"%s\"}", SESSION_NAME);

	/* the edu buffer holds the in-flight pattern (and, unreset, of the next two) */
	if (in_flight_load(&p, IN_FLIGHT_SRC, IN_FLIGHT_DST, SEED_IN_FLIGHT) < 0)
		return 1;
	in_flight_kexec(&p, IN_FLIGHT_DST, image, initrd, append);
	return 1;
}

/*
 * FINISH refused (EBUSY): the device has no domain to move to, or one that
 * translates differently. Nothing is freed: nr_iommu_pages stays.
 */
static bool finish_refused(int session, const char *why)
{
	long before = vmstat("nr_iommu_pages"), after;
	int r = luo_finish(session);

	after = vmstat("nr_iommu_pages");
	emit("{\"event\":\"finish-refused\",\"why\":\"%s\",\"errno\":%d,"
	     "\"iommu_pages_before\":%ld,\"iommu_pages_after\":%ld}",
	     why, r < 0 ? -r : 0, before, after);
	return r == -EBUSY && before == after;
}

static int run_new_kernel(const char *slot)
{
	uint32_t wrong_ioas, wrong_hwpt;
	long pages_before, pages_after;
	const char *step;
	Passthrough p;
	int session, r;
	bool ok;

	session = own_session_retrieve_ram(SESSION_NAME, TOKEN_RAM, &p);
	if (session < 0)
		return 1;

	/* the DMA started just before the kexec */
	ok = in_flight_check(p.ram, IN_FLIGHT_DST, SEED_IN_FLIGHT);

	/* take the running device over: bound to the new iommufd, not reset */
	p.iommufd = luo_retrieve_fd(session, TOKEN_IOMMUFD);
	if (p.iommufd < 0) {
		event_error("retrieve the iommufd", -p.iommufd);
		return 1;
	}
	p.device_fd = luo_retrieve_fd(session, TOKEN_DEVICE);
	if (p.device_fd < 0) {
		event_error("retrieve the device", -p.device_fd);
		return 1;
	}
	r = passthrough_take_over(&p, &step);
	if (r < 0) {
		event_error(step, -r);
		return 1;
	}
	emit("{\"event\":\"taken-over\",\"slot\":\"%s\",\"dev_id\":%u}", slot, p.dev_id);

	/* the unreset device, through the handed-over tables */
	r = event_dma(&p, "old-tables", EVENT_DMA_FROM_BUFFER, OLD_TABLES_DST, SEED_IN_FLIGHT);
	if (r < 0)
		return 1;
	ok &= r;

	/* FINISH must wait for a domain to move the device to */
	if (!finish_refused(session, "not-attached"))
		return 1;

	/*
	 * A VMM's mistake: guest RAM shifted by a page in the IOAS. Attaching
	 * is deferred to FINISH, and FINISH refuses a domain that would move
	 * the device's DMA to other memory.
	 */
	r = passthrough_build_domain(&p, WRONG_RAM_OFFSET, &step);
	if (r < 0) {
		event_error(step, -r);
		return 1;
	}
	wrong_ioas = p.ioas_id;
	wrong_hwpt = p.hwpt_id;
	if (!finish_refused(session, "wrong-domain"))
		return 1;

	/* the VMM's own domain again, replacing the wrong one; still deferred */
	r = passthrough_build_domain(&p, 0, &step);
	if (r >= 0) {
		step = "destroy the wrong HWPT and IOAS";
		r = passthrough_destroy(&p, wrong_hwpt);
		if (r >= 0)
			r = passthrough_destroy(&p, wrong_ioas);
	}
	if (r < 0) {
		event_error(step, -r);
		return 1;
	}
	emit("{\"event\":\"rebuilt\",\"ioas_id\":%u,\"hwpt_id\":%u}", p.ioas_id, p.hwpt_id);
	r = event_dma(&p, "before-finish", EVENT_DMA_FROM_BUFFER, BEFORE_FINISH_DST,
		      SEED_IN_FLIGHT);
	if (r < 0)
		return 1;
	ok &= r;

	pages_before = vmstat("nr_iommu_pages");
	r = luo_finish(session);
	if (r < 0) {
		event_error("finish the session", -r);
		return 1;
	}
	pages_after = vmstat("nr_iommu_pages");
	emit("{\"event\":\"finished\",\"iommu_pages_before\":%ld,\"iommu_pages_after\":%ld,"
	     "\"bus_master\":%s}",
	     pages_before, pages_after, bus_master_json(slot));

	/* a fresh pattern both ways, through the new domain */
	r = event_dma(&p, "new-domain", NEW_DOMAIN_SRC, NEW_DOMAIN_DST, SEED_NEW_DOMAIN);
	if (r < 0)
		return 1;
	ok &= r;
	return ok ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: liveupdate-edu-hotswap --slot SLOT --kexec IMAGE [--initrd FILE] "
		   "[--append WORDS]\n"
		   "       liveupdate-edu-hotswap --slot SLOT --retrieve\n"
		   "Hands QEMU's edu device (bound to vfio-pci) over across a kexec with the\n"
		   "iommufd and vfio-pci handlers, takes it over in the new kernel, moves it to\n"
		   "a new domain, and checks its DMA all along.\n");
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
	events_init("edu-hotswap: ");
	return retrieve ? run_new_kernel(slot) : run_old_kernel(slot, image, initrd, append);
}
