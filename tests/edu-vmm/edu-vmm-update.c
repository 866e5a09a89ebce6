/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The update, as the VM of the old kernel goes through it. PREPARE: mark
 * the device's HWPT to be handed over (IOMMU_HWPT_LU_SET_PRESERVE) and
 * have the daemon preserve guest RAM, the iommufd and the device, in the
 * order of preserved-files.h. FREEZE: the VM stops; edu's buffer is loaded
 * with a pattern, a DMA of it to a zeroed page is started and not waited
 * for (edu runs it 100 ms of guest time later, while the machine goes
 * through the kexec), FROZEN. THAW (the update was aborted): that DMA must
 * have landed; the VM runs on.
 */
#include <errno.h>
#include <inttypes.h>
#include <time.h>

#include "edu-vmm-ram.h"
#include "edu-vmm.h"
#include "edu.h"
#include "events.h"
#include "handover-clock.h"
#include "in-flight.h"
#include "pattern.h"
#include "preserved-files.h"

/* How long an in-flight DMA may take to land when the update is aborted. */
#define IN_FLIGHT_TIMEOUT_MS 10000

/* A PreserveFd: handed to liveupdated, which preserves it. */
static int preserve_through_daemon(void *vmm, int fd, uint64_t token)
{
	return lu_vmm_preserve_fd(vmm, fd, token);
}

/*
 * A failed preparation leaves the VM running and PREPARE unanswered: the
 * daemon's deadline aborts the update and THAWs us, as with any VMM.
 */
int on_prepare(EduVmm *e, const struct lu_vmm_event *ev)
{
	int r;

	if (!e->attached) {
		event_error("PREPARE without a device passed through", EINVAL);
		return RUN_ON;
	}
	if (ev->max_fds < N_PRESERVED_FILES) {
		event_error("the daemon allows fewer fds than the VM has", E2BIG);
		return RUN_ON;
	}
	r = passthrough_mark_for_update(&e->p);
	if (r < 0) {
		event_error("mark the HWPT for the update", -r);
		return RUN_ON;
	}
	emit("{\"event\":\"marked\",\"hwpt_id\":%u}", e->p.hwpt_id);
	if (preserve_passthrough(&e->p, preserve_through_daemon, e->vmm) < 0)
		return RUN_ON;
	r = lu_vmm_prepare_done(e->vmm);
	if (r < 0) {
		event_error("prepare done", -r);
		return RUN_ON;
	}
	emit("{\"event\":\"prepared\",\"update_id\":\"%s\",\"fds\":%d}", ev->update_id,
	     N_PRESERVED_FILES);
	return RUN_ON;
}

/*
 * The VM stops; the device is left a DMA to do. A FREEZE that fails is
 * left unanswered: the daemon's deadline aborts the update (THAW).
 */
int on_freeze(EduVmm *e, const struct lu_vmm_event *ev)
{
	char buf[24];
	uint64_t tsc = 0;
	bool has_tsc;
	int r;

	if (!e->attached || e->state != VM_RUNNING) {
		event_error("FREEZE for a VM that does not run", EINVAL);
		return RUN_ON;
	}
	/* the VM stops here: its blackout starts */
	e->state = VM_FROZEN;
	has_tsc = handover_clock_now(&tsc) >= 0;

	/* edu's buffer holds the pattern (and, unreset, does after the kexec) */
	if (in_flight_load(&e->p, IN_FLIGHT_SRC, IN_FLIGHT_DST, SEED_IN_FLIGHT) < 0)
		return RUN_ON;
	vmstate_save(e->p.ram, has_tsc ? tsc : 0, e->rounds);

	/* said before FROZEN: after it, the kexec may come before any word of ours */
	emit("{\"event\":\"dma-started\",\"step\":\"in-flight\",\"iova\":\"0x%x\",\"bytes\":%u,"
	     "\"timeout_ms\":%" PRIu32 ",\"tsc\":%s}",
	     GUEST_RAM_IOVA + IN_FLIGHT_DST, EDU_TRANSFER, ev->timeout_ms,
	     json_u64_or_null(buf, has_tsc, tsc));
	in_flight_start(&e->p, IN_FLIGHT_DST);
	e->in_flight = true;

	r = lu_vmm_frozen(e->vmm);
	if (r < 0) {
		event_error("frozen", -r);
		return RUN_ON;
	}
	emit("{\"event\":\"frozen\"}");
	return RUN_ON;
}

/*
 * The DMA started at FREEZE lands 100 ms of guest time after it was
 * started; edu reports nothing but its command register, so the VM polls
 * the page until the whole pattern is there (edu writes it and ends the
 * command in one go, before the next access to its registers) or time
 * runs out, and the check says what landed.
 */
static void wait_landed(const uint8_t *page, unsigned int seed)
{
	size_t first_bad;

	for (int ms = 0; ms < IN_FLIGHT_TIMEOUT_MS; ms += 10) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (pattern_mismatches(page, seed, &first_bad) == 0)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

/* The update was aborted: the VM runs on, its device's DMA landed meanwhile. */
int on_thaw(EduVmm *e, const struct lu_vmm_event *ev)
{
	if (e->in_flight) {
		wait_landed(e->p.ram + IN_FLIGHT_DST, SEED_IN_FLIGHT);
		(void)in_flight_check(e->p.ram, IN_FLIGHT_DST, SEED_IN_FLIGHT);
		e->in_flight = false;
	}
	if (e->attached)
		vmstate_clear(e->p.ram);
	if (e->state == VM_FROZEN)
		e->state = VM_RUNNING;
	emit("{\"event\":\"thawed\",\"error\":%d}", ev->error);
	return RUN_ON;
}
