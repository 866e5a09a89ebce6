/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What the daemon tells about itself: the status, the VMM list, the report
 * of the update in flight or the last one, and the outcome of an update
 * when it ends (kept in memory and in <state>/last-report.json).
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "handover-clock.h"
#include "log.h"
#include "manager.h"
#include "string-util.h"

/* The report as JSON, its timeline converted with this process's rate as measured now. */
static json_object *report_json(Report *r)
{
	if (report_has_tsc(r) && handover_clock_hz(&r->tsc.hz) < 0)
		r->tsc.hz = 0;
	return report_to_json(r);
}

void manager_finish_report(Manager *m, ReportOutcome outcome)
{
	Update *u = m->update;
	json_object *event, *error = NULL, *blackout = NULL, *timeline = NULL;
	char path[4096];

	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];
		ReportVm *rv;

		if (!v->vm_id[0] || !(v->freeze_requested_us || v->state == VMM_RELEASED))
			continue;
		rv = report_vm(u->report, v->vm_id);
		if (!rv)
			continue;
		rv->fds = (unsigned)v->n_tokens ?: rv->fds;
		rv->freeze_requested_us = v->freeze_requested_us ?: rv->freeze_requested_us;
		rv->frozen_us = v->frozen_us ?: rv->frozen_us;
		if (v->state == VMM_RELEASED)
			rv->outcome = REPORT_VM_RELEASED;
	}
	u->report->outcome = outcome;
	json_object_put(m->last_report);
	m->last_report = report_json(u->report);

	snprintf(path, sizeof(path), "%s/last-report.json", m->config.state_dir);
	if (json_object_to_file_ext(path, m->last_report, JSON_C_TO_STRING_PLAIN) < 0)
		log_debug("Cannot save %s", path);

	event = control_event_new("outcome");
	json_object_object_add(event, "update_id", json_object_new_string(u->id));
	json_object_object_add(event, "outcome", json_object_new_string(report_outcome_to_string(outcome)));
	if (u->report->error_code) {
		error = json_object_new_object();
		json_object_object_add(error, "code", json_object_new_string(u->report->error_code));
		json_object_object_add(error, "message", json_object_new_string(u->report->error_message ?: ""));
	}
	json_object_object_add(event, "error", error);
	manager_emit(m, event);
	log_info("Update %s: %s%s%s", u->id, report_outcome_to_string(outcome),
		 u->report->error_message ? ": " : "", u->report->error_message ?: "");
	json_object_object_get_ex(m->last_report, "timeline", &timeline);
	if (json_object_object_get_ex(m->last_report, "blackout_us", &blackout) && blackout)
		log_info("Update %s: blackout %" PRId64 " us (%s)", u->id,
			 json_object_get_int64(blackout), timeline ? "TSC" : "CLOCK_REALTIME");
}

json_object *manager_status_json(Manager *m)
{
	json_object *o = json_object_new_object(), *vmms = json_object_new_object(), *kernel = NULL,
		    *outcome = NULL;

	json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(o, "state", json_object_new_string(update_state_to_string(m->state)));
	json_object_object_add(o, "update_id", m->update ? json_object_new_string(m->update->id) : NULL);
	if (m->update && m->update->kernel_image) {
		kernel = json_object_new_object();
		json_object_object_add(kernel, "image", json_object_new_string(m->update->kernel_image));
		json_object_object_add(kernel, "initrd",
				       m->update->initrd ? json_object_new_string(m->update->initrd) : NULL);
		json_object_object_add(kernel, "cmdline", json_object_new_string(m->update->cmdline));
	}
	json_object_object_add(o, "kernel", kernel);

	json_object_object_add(vmms, "total", json_object_new_int((int)m->n_vmms));
	for (VmmState s = 0; s < _VMM_STATE_MAX; s++) {
		size_t n = manager_count_vmms(m, s);

		if (n > 0)
			json_object_object_add(vmms, vmm_state_to_string(s), json_object_new_int((int)n));
	}
	json_object_object_add(o, "vmms", vmms);

	if (m->last_report && json_object_object_get_ex(m->last_report, "outcome", &outcome))
		outcome = json_object_get(outcome);
	json_object_object_add(o, "last_outcome", outcome);

	json_object_object_add(o, "devices", manager_devices_json(m));
	/* the update in flight, else the last one */
	json_object_object_add(o, "report", manager_report_json(m));
	if (m->n_held > 0)
		json_object_object_add(o, "held_sessions", manager_held_json(m));
	return o;
}

json_object *manager_list_json(Manager *m)
{
	json_object *o = json_object_new_object(), *list = json_object_new_array();

	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];
		json_object *e;

		if (!v->vm_id[0])
			continue;
		e = json_object_new_object();
		json_object_object_add(e, "vm_id", json_object_new_string(v->vm_id));
		json_object_object_add(e, "state", json_object_new_string(vmm_state_to_string(v->state)));
		json_object_object_add(e, "connected", json_object_new_boolean(v->fd >= 0));
		json_object_object_add(e, "pid", v->fd >= 0 ? json_object_new_int(v->cred.pid) : NULL);
		json_object_object_add(e, "uid", json_object_new_int64(v->cred.uid));
		json_object_object_add(e, "fds", json_object_new_int((int)v->n_tokens));
		json_object_object_add(e, "session", v->session_fd >= 0 ? json_object_new_string(v->session_name) : NULL);
		json_object_object_add(e, "devices", vmm_devices_json(v));
		json_object_object_add(e, "finish_error", v->finish_error ?
				       json_object_new_string(errno_to_name(v->finish_error) ?: "unknown") : NULL);
		json_object_array_add(list, e);
	}
	json_object_object_add(o, "vmms", list);
	return o;
}

json_object *manager_report_json(Manager *m)
{
	if (m->update)
		return report_json(m->update->report);
	return m->last_report ? json_object_get(m->last_report) : NULL;
}
