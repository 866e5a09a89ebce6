/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover-clock.h"
#include "report.h"

static const char *const outcome_table[_REPORT_OUTCOME_MAX] = {
	[REPORT_IN_PROGRESS] = "in-progress",
	[REPORT_SUCCESS] = "success",
	[REPORT_ABORTED] = "aborted",
	[REPORT_FAILED] = "failed",
};

static const char *const phase_table[_REPORT_PHASE_MAX] = {
	[REPORT_PHASE_PREPARE] = "prepare",
	[REPORT_PHASE_FREEZE] = "freeze",
	[REPORT_PHASE_REBOOT] = "reboot",
	[REPORT_PHASE_RESTORE] = "restore",
	[REPORT_PHASE_FINISH] = "finish",
};

static const char *const vm_outcome_table[_REPORT_VM_OUTCOME_MAX] = {
	[REPORT_VM_PENDING] = "pending",
	[REPORT_VM_RESUMED] = "resumed",
	[REPORT_VM_THAWED] = "thawed",
	[REPORT_VM_RELEASED] = "released",
	[REPORT_VM_FAILED] = "failed",
};

const char *report_outcome_to_string(ReportOutcome o)
{
	return o < _REPORT_OUTCOME_MAX ? outcome_table[o] : NULL;
}

Report *report_new(const char *update_id)
{
	Report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	snprintf(r->update_id, sizeof(r->update_id), "%s", update_id);
	return r;
}

Report *report_free(Report *r)
{
	if (!r)
		return NULL;
	free(r->error_code);
	free(r->error_message);
	free(r->kernel_image);
	free(r->initrd);
	free(r->cmdline);
	free(r->vms);
	free(r);
	return NULL;
}

static int replace(char **dst, const char *src)
{
	char *s = NULL;

	if (src && !(s = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

int report_set_kernel(Report *r, const char *image, const char *initrd, const char *cmdline)
{
	if (replace(&r->kernel_image, image) < 0 || replace(&r->initrd, initrd) < 0 ||
	    replace(&r->cmdline, cmdline) < 0)
		return -ENOMEM;
	return 0;
}

int report_set_error(Report *r, const char *code, const char *message)
{
	/* the first error is the cause; later ones are consequences */
	if (r->error_code)
		return 0;
	if (replace(&r->error_code, code) < 0 || replace(&r->error_message, message) < 0)
		return -ENOMEM;
	return 0;
}

ReportVm *report_vm(Report *r, const char *vm_id)
{
	ReportVm *a;

	for (size_t i = 0; i < r->n_vms; i++)
		if (strcmp(r->vms[i].vm_id, vm_id) == 0)
			return &r->vms[i];

	a = reallocarray(r->vms, r->n_vms + 1, sizeof(ReportVm));
	if (!a)
		return NULL;
	r->vms = a;
	a = &r->vms[r->n_vms++];
	*a = (ReportVm){ 0 };
	snprintf(a->vm_id, sizeof(a->vm_id), "%s", vm_id);
	return a;
}

void report_phase_start(Report *r, ReportPhase p, usec_t t)
{
	r->phase_start[p] = t;
}

void report_phase_end(Report *r, ReportPhase p, usec_t t)
{
	r->phase_end[p] = t;
}

usec_t report_blackout_us(const Report *r)
{
	usec_t first = 0, last = 0;

	for (size_t i = 0; i < r->n_vms; i++) {
		const ReportVm *vm = &r->vms[i];

		if (!vm->freeze_requested_us || !vm->resumed_us)
			continue;
		if (!first || vm->freeze_requested_us < first)
			first = vm->freeze_requested_us;
		if (vm->resumed_us > last)
			last = vm->resumed_us;
	}
	return first && last > first ? last - first : 0;
}

static json_object *time_or_null(usec_t t)
{
	return t ? json_object_new_uint64(t) : NULL;
}

bool report_has_tsc(const Report *r)
{
	return r->tsc.freeze_requested != 0;
}

/*
 * The stamps must run forward in the order they were taken. One that does
 * not means the TSC did not count on across the kexec (another machine, a
 * kernel that reset it): then there is no timeline rather than a wrong one.
 */
static bool tsc_in_order(const Report *r)
{
	const ReportTsc *t = &r->tsc;
	const uint64_t daemons[] = { t->freeze_requested, t->frozen, t->reboot, t->daemon_start,
				     t->restore_ready };
	uint64_t last = 0;

	for (size_t i = 0; i < ARRAY_SIZE(daemons); i++) {
		if (!daemons[i])
			continue;
		if (daemons[i] < last)
			return false;
		last = daemons[i];
	}
	for (size_t i = 0; i < r->n_vms; i++) {
		const ReportVm *vm = &r->vms[i];

		if ((vm->restore_tsc && vm->restore_tsc < last) ||
		    (vm->resumed_tsc && vm->resumed_tsc < MAX(last, vm->restore_tsc)))
			return false;
	}
	return true;
}

/* µs on the handover clock from the freeze request to t; -1 when t is unknown. */
static int64_t since_freeze_us(const Report *r, uint64_t t)
{
	if (!t)
		return -1;
	return (int64_t)handover_clock_ticks_to_us(t - r->tsc.freeze_requested, r->tsc.hz);
}

static json_object *span_or_null(int64_t from, int64_t to)
{
	return from >= 0 && to >= 0 ? json_object_new_int64(to - from) : NULL;
}

/*
 * Every stamp is converted as its distance from the freeze request, and
 * the phases are differences of those: they add up to the blackout exactly.
 */
static json_object *timeline_to_json(const Report *r)
{
	json_object *o;
	uint64_t last = 0;
	int64_t frozen, start, ready, resumed;

	if (!report_has_tsc(r) || !r->tsc.hz || !tsc_in_order(r))
		return NULL;
	/* the handback ends with the last VM that resumed, once none is pending */
	for (size_t i = 0; r->outcome != REPORT_IN_PROGRESS && i < r->n_vms; i++)
		if (r->vms[i].outcome == REPORT_VM_RESUMED)
			last = MAX(last, r->vms[i].resumed_tsc);
	frozen = since_freeze_us(r, r->tsc.frozen);
	start = since_freeze_us(r, r->tsc.daemon_start);
	ready = since_freeze_us(r, r->tsc.restore_ready);
	resumed = since_freeze_us(r, last);

	o = json_object_new_object();
	json_object_object_add(o, "clock", json_object_new_string("tsc"));
	json_object_object_add(o, "tsc_hz", json_object_new_uint64(r->tsc.hz));
	json_object_object_add(o, "freeze_barrier_us", span_or_null(0, frozen));
	json_object_object_add(o, "kexec_boot_us", span_or_null(frozen, start));
	json_object_object_add(o, "restore_us", span_or_null(start, ready));
	json_object_object_add(o, "handback_us", span_or_null(ready, resumed));
	json_object_object_add(o, "blackout_us", span_or_null(0, resumed));
	return o;
}

json_object *report_to_json(const Report *r)
{
	json_object *o = json_object_new_object(), *phases = json_object_new_array(),
		    *vms = json_object_new_array(), *kernel = json_object_new_object(), *error = NULL;
	json_object *timeline = timeline_to_json(r), *blackout = NULL;
	usec_t realtime = report_blackout_us(r);

	json_object_object_add(o, "update_id", json_object_new_string(r->update_id));
	json_object_object_add(o, "outcome", json_object_new_string(outcome_table[r->outcome]));
	if (r->error_code) {
		error = json_object_new_object();
		json_object_object_add(error, "code", json_object_new_string(r->error_code));
		json_object_object_add(error, "message",
				       json_object_new_string(r->error_message ?: ""));
	}
	json_object_object_add(o, "error", error);

	json_object_object_add(kernel, "image", r->kernel_image ? json_object_new_string(r->kernel_image) : NULL);
	json_object_object_add(kernel, "initrd", r->initrd ? json_object_new_string(r->initrd) : NULL);
	json_object_object_add(kernel, "cmdline", r->cmdline ? json_object_new_string(r->cmdline) : NULL);
	json_object_object_add(o, "kernel", kernel);

	for (ReportPhase p = 0; p < _REPORT_PHASE_MAX; p++) {
		json_object *ph;

		if (!r->phase_start[p])
			continue;
		ph = json_object_new_object();
		json_object_object_add(ph, "name", json_object_new_string(phase_table[p]));
		json_object_object_add(ph, "start_us", time_or_null(r->phase_start[p]));
		json_object_object_add(ph, "end_us", time_or_null(r->phase_end[p]));
		json_object_array_add(phases, ph);
	}
	json_object_object_add(o, "phases", phases);
	/* the TSC's if there is one: across the kexec CLOCK_REALTIME is off by up to 1 s */
	if (timeline)
		json_object_object_get_ex(timeline, "blackout_us", &blackout);
	else if (realtime)
		blackout = json_object_new_uint64(realtime);
	json_object_object_add(o, "blackout_us", timeline ? json_object_get(blackout) : blackout);
	json_object_object_add(o, "timeline", timeline);

	for (size_t i = 0; i < r->n_vms; i++) {
		const ReportVm *vm = &r->vms[i];
		json_object *v = json_object_new_object();
		int64_t restore, resumed;

		json_object_object_add(v, "vm_id", json_object_new_string(vm->vm_id));
		json_object_object_add(v, "outcome", json_object_new_string(vm_outcome_table[vm->outcome]));
		json_object_object_add(v, "fds", json_object_new_int((int)vm->fds));
		json_object_object_add(v, "freeze_requested_us", time_or_null(vm->freeze_requested_us));
		json_object_object_add(v, "frozen_us", time_or_null(vm->frozen_us));
		json_object_object_add(v, "restored_us", time_or_null(vm->restored_us));
		json_object_object_add(v, "resumed_us", time_or_null(vm->resumed_us));
		restore = resumed = -1;
		if (timeline && vm->outcome == REPORT_VM_RESUMED) {
			restore = since_freeze_us(r, vm->restore_tsc);
			resumed = since_freeze_us(r, vm->resumed_tsc);
		}
		json_object_object_add(v, "blackout_us", span_or_null(0, resumed));
		json_object_object_add(v, "handback_us", span_or_null(restore, resumed));
		json_object_array_add(vms, v);
	}
	json_object_object_add(o, "vmms", vms);
	return o;
}
