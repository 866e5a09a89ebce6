/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * After the kexec, started again with the same id. RESTORE: retrieve the
 * three files, map guest RAM (the DMA started at FREEZE must be there),
 * take the running device over by binding it to the retrieved iommufd (no
 * reset), map BAR0 through the device file; edu's buffer still holds the
 * pattern, and a DMA of it must land through the handed-over page tables.
 * Rebuild the domain as it was (IOAS, guest RAM at the same IOVA, HWPT,
 * attach: the kernel defers the attach until FINISH); a DMA still lands.
 * RESUMED: the daemon FINISHes the session, which moves the device to the
 * rebuilt domain and frees the handed-over tables; a fresh pattern RAM to
 * edu to RAM must land through the new domain. --hold-resume waits for
 * SIGUSR2 before RESUMED, so a test can look at the daemon meanwhile.
 */
#include <errno.h>
#include <inttypes.h>

#include "edu-vmm-ram.h"
#include "edu-vmm.h"
#include "events.h"
#include "guest-kernel.h"
#include "handover-clock.h"
#include "in-flight.h"
#include "preserved-files.h"

/*
 * RESUMED: the daemon FINISHes the session, and the kernel moves the device
 * to the rebuilt domain and frees the handed-over tables (the fall of
 * nr_iommu_pages). Then a fresh pattern both ways, through the new domain.
 */
int vm_resume(EduVmm *e)
{
	long pages_before, pages_after;
	uint64_t hz = 0, resumed_tsc = 0;
	char b1[24], b2[24], b3[24], b4[24], b5[24];
	bool has_hz, has_tsc, blackout;
	int r;

	has_tsc = handover_clock_now(&resumed_tsc) >= 0;
	pages_before = vmstat("nr_iommu_pages");
	r = lu_vmm_resumed(e->vmm);
	pages_after = vmstat("nr_iommu_pages");
	e->state = VM_RUNNING;
	if (r < 0) {
		/* the session was not finished: the device stays on the old tables */
		event_error("resumed (the daemon's FINISH of the session)", -r);
		return RUN_ON;
	}

	/*
	 * The blackout: from the old process's FREEZE to the device in use
	 * again here (taken over, domain rebuilt), not counting a hold.
	 */
	has_hz = handover_clock_hz(&hz) >= 0 && hz;
	blackout = has_hz && e->frozen_tsc && e->running_tsc >= e->frozen_tsc;
	emit("{\"event\":\"resumed\",\"iommu_pages_before\":%ld,\"iommu_pages_after\":%ld,"
	     "\"bus_master\":%s,\"frozen_tsc\":%s,\"running_tsc\":%s,\"tsc_hz\":%s,"
	     "\"blackout_us\":%s,\"held_us\":%s}",
	     pages_before, pages_after, bus_master_json(e->slot),
	     json_u64_or_null(b1, e->frozen_tsc, e->frozen_tsc),
	     json_u64_or_null(b2, e->running_tsc, e->running_tsc),
	     json_u64_or_null(b3, has_hz, hz),
	     json_u64_or_null(b4, blackout,
			      handover_clock_ticks_to_us(e->running_tsc - e->frozen_tsc, hz)),
	     json_u64_or_null(b5,
			      has_hz && has_tsc && e->running_tsc && resumed_tsc >= e->running_tsc,
			      handover_clock_ticks_to_us(resumed_tsc - e->running_tsc, hz)));

	return event_dma(&e->p, "new-domain", NEW_DOMAIN_SRC, NEW_DOMAIN_DST,
			 SEED_NEW_DOMAIN) < 0 ?
		       EXIT_ERROR :
		       RUN_ON;
}

/* A file of the RESTORE, or an error event. */
static int restored_fd(EduVmm *e, uint64_t token, const char *what)
{
	int fd = lu_vmm_restored_fd(e->vmm, token);

	if (fd < 0)
		event_error(what, -fd);
	return fd;
}

/* After the kexec: take the VM and its running device back. */
int on_restore(EduVmm *e, const struct lu_vmm_event *ev)
{
	const char *step;
	int r;

	if (e->attached) {
		event_error("RESTORE for a VM that already runs; ignored", EALREADY);
		return RUN_ON;
	}
	e->p = (Passthrough){ .iommufd = -1, .device_fd = -1, .ram_fd = -1 };
	e->p.ram_fd = restored_fd(e, TOKEN_RAM, "retrieve guest RAM");
	if (e->p.ram_fd < 0)
		return EXIT_ERROR;
	e->p.iommufd = restored_fd(e, TOKEN_IOMMUFD, "retrieve the iommufd");
	if (e->p.iommufd < 0)
		return EXIT_ERROR;
	e->p.device_fd = restored_fd(e, TOKEN_DEVICE, "retrieve the device");
	if (e->p.device_fd < 0)
		return EXIT_ERROR;
	r = passthrough_mmap_ram(&e->p);
	if (r < 0) {
		event_error("map guest RAM", -r);
		return EXIT_ERROR;
	}
	emit("{\"event\":\"restored\",\"update_id\":\"%s\",\"fds\":%" PRIu32 "}", ev->update_id,
	     ev->n_tokens);
	e->state = VM_FROZEN;

	if (!vmstate_load(e->p.ram, &e->frozen_tsc, &e->rounds))
		event_error("no VM state in guest RAM", ENODATA);

	/* the DMA started at FREEZE, before the kexec */
	(void)in_flight_check(e->p.ram, IN_FLIGHT_DST, SEED_IN_FLIGHT);

	/* take the running device over: bound to the retrieved iommufd, not reset */
	r = passthrough_take_over(&e->p, &step);
	if (r < 0) {
		event_error(step, -r);
		return EXIT_ERROR;
	}
	e->attached = true;
	emit("{\"event\":\"taken-over\",\"slot\":\"%s\",\"dev_id\":%u}", e->slot, e->p.dev_id);

	/* the unreset device, its buffer as it was, through the handed-over tables */
	if (event_dma(&e->p, "old-tables", EVENT_DMA_FROM_BUFFER, OLD_TABLES_DST,
		      SEED_IN_FLIGHT) < 0)
		return EXIT_ERROR;

	/* the VM's own domain again; the kernel defers the attach until FINISH */
	r = passthrough_build_domain(&e->p, 0, &step);
	if (r < 0) {
		event_error(step, -r);
		return EXIT_ERROR;
	}
	emit("{\"event\":\"rebuilt\",\"ioas_id\":%u,\"hwpt_id\":%u}", e->p.ioas_id, e->p.hwpt_id);
	if (event_dma(&e->p, "before-finish", EVENT_DMA_FROM_BUFFER, BEFORE_FINISH_DST,
		      SEED_IN_FLIGHT) < 0)
		return EXIT_ERROR;

	/* the VM runs from here; RESUMED lets the daemon finish the session */
	if (handover_clock_now(&e->running_tsc) < 0)
		e->running_tsc = 0;
	if (e->hold_resume) {
		e->state = VM_HELD;
		emit("{\"event\":\"held\"}");
		return RUN_ON;
	}
	return vm_resume(e);
}
