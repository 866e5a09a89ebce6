/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The report of one update: when each phase ran, what happened to each
 * VMM, the blackout, the outcome. It is built as the update runs, rebuilt
 * after the kexec from the manifest and the commit record, and kept as
 * JSON once the update is over (the API's "report").
 *
 * Times are CLOCK_REALTIME microseconds, which both kernels share but the
 * new one sets from the RTC (1 s). The blackout and its phases come from
 * the handover clock instead (handover-clock.h): raw TSC stamps of both
 * daemons, subtracted as ticks and converted with this process's rate.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include <liveupdate/vmm-protocol.h>

#include "macro.h"
#include "time-util.h"

typedef enum ReportOutcome {
	REPORT_IN_PROGRESS,
	REPORT_SUCCESS,
	REPORT_ABORTED, /* rolled back before the kexec, VMs running on the old kernel */
	REPORT_FAILED,  /* something was lost or could not be restored */
	_REPORT_OUTCOME_MAX,
} ReportOutcome;

typedef enum ReportPhase {
	REPORT_PHASE_PREPARE,
	REPORT_PHASE_FREEZE,
	REPORT_PHASE_REBOOT,
	REPORT_PHASE_RESTORE,
	REPORT_PHASE_FINISH,
	_REPORT_PHASE_MAX,
} ReportPhase;

typedef enum ReportVmOutcome {
	REPORT_VM_PENDING,
	REPORT_VM_RESUMED,  /* running again on the new kernel */
	REPORT_VM_THAWED,   /* update aborted, running on the old kernel */
	REPORT_VM_RELEASED, /* never came back; its memory was freed */
	REPORT_VM_FAILED,   /* it caused the abort */
	_REPORT_VM_OUTCOME_MAX,
} ReportVmOutcome;

typedef struct ReportVm {
	char vm_id[LU_VM_ID_MAX + 1];
	ReportVmOutcome outcome;
	unsigned fds;
	usec_t freeze_requested_us, frozen_us, restored_us, resumed_us;
	uint64_t restore_tsc, resumed_tsc; /* RESTORE sent, RESUMED received; 0: unknown */
} ReportVm;

/* Handover clock ticks, 0 when unknown. */
typedef struct ReportTsc {
	/* the old kernel's daemon, from its commit record */
	uint64_t freeze_requested, frozen, reboot;
	/* this daemon: its start, and ready to hand sessions back */
	uint64_t daemon_start, restore_ready;
	/* ticks per second to convert with, set just before report_to_json(); 0: none */
	uint64_t hz;
} ReportTsc;

typedef struct Report {
	char update_id[LU_UPDATE_ID_MAX + 1];
	ReportOutcome outcome;
	char *error_code, *error_message;
	char *kernel_image, *initrd, *cmdline;
	usec_t phase_start[_REPORT_PHASE_MAX], phase_end[_REPORT_PHASE_MAX];
	ReportVm *vms;
	size_t n_vms;
	ReportTsc tsc;
} Report;

Report *report_new(const char *update_id);
Report *report_free(Report *r);
DEFINE_FREEP(Report, report_free)

int report_set_kernel(Report *r, const char *image, const char *initrd, const char *cmdline);
int report_set_error(Report *r, const char *code, const char *message);
/* The entry for vm_id, added if missing; NULL on allocation failure. */
ReportVm *report_vm(Report *r, const char *vm_id);
void report_phase_start(Report *r, ReportPhase p, usec_t t);
void report_phase_end(Report *r, ReportPhase p, usec_t t);

/* First freeze request to last resume on CLOCK_REALTIME, or 0 if not known. */
usec_t report_blackout_us(const Report *r);
/* Whether the report has a handover clock timeline to convert (then set tsc.hz). */
bool report_has_tsc(const Report *r);

json_object *report_to_json(const Report *r);
const char *report_outcome_to_string(ReportOutcome o);
