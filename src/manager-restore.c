/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * After the kexec: the daemon of the new kernel picks the update up.
 *
 * Order matters. The modules named in the handover file are loaded first,
 * because the first open of /dev/liveupdate deserializes every incoming
 * file and fails for good on a file whose handler is missing. Then our own
 * session gives the manifest and the commit record, and every VM's session
 * is retrieved and held (in the fd store too: closing a retrieved session
 * finishes it, and finishing frees what was not retrieved).
 *
 * Each VMM is served the moment it says HELLO, independently of the
 * others: it gets its session fd and its tokens and retrieves its files
 * itself, so their pages are charged to its own cgroup. When it reports
 * RESUMED its session is finished. A VMM that never comes back keeps its
 * memory until an operator releases it or the restore timeout does.
 *
 * FINISH of a session that carried a passed-through device is also the
 * device's hot swap: the kernel moves it from the handed-over page tables
 * to the domain the VMM attached since, and frees the old tables. The
 * kernel refuses (EBUSY) while the VMM has not attached a domain that
 * maps the guest's memory as before. Then nothing is lost: the device
 * keeps translating through the old tables, the session stays with its
 * VMM, which hears the error and may say RESUMED again.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "handover-clock.h"
#include "finish-policy.h"
#include "handover.h"
#include "log.h"
#include "luo.h"
#include "manager.h"
#include "modules.h"
#include "vmm-message.h"

static void load_handover_modules(Manager *m, char **ret_update_id)
{
	char **modules = NULL;
	const char *failed = NULL;
	size_t n = 0;
	int r;

	r = handover_read(m->config.state_dir, ret_update_id, &modules, &n);
	if (r == -ENOENT)
		return;
	if (r < 0) {
		log_error_errno(r, "Cannot read %s/" HANDOVER_FILE_NAME ": %m", m->config.state_dir);
		return;
	}
	r = modules_load(m->config.modules_dir, modules, n, &failed);
	if (r < 0)
		log_error_errno(r, "Cannot load module %s, needed by the preserved files: %m", failed);
	else if (n > 0)
		log_info("Loaded %zu module(s) for the preserved files", n);
	strv_free(modules);
}

/* How often the restore timeout tries again to release what the kernel would not finish. */
#define RESTORE_RETRY_S 60ULL

static int read_preserved_json(int session_fd, uint64_t token, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;

	fd = luo_retrieve_fd(session_fd, token);
	if (fd < 0)
		return fd;
	return manifest_memfd_read(fd, MANIFEST_SIZE_MAX, ret, ret_len);
}

/*
 * The report, rebuilt from what the previous kernel's daemon wrote down.
 * picked_up: a previous instance of ours started the restore, so our start
 * is not where the reboot ended.
 */
static void rebuild_report(Update *u, const CommitRecord *rec, usec_t now, bool picked_up)
{
	Manifest *man = u->manifest;
	Report *r = u->report;

	(void)report_set_kernel(r, man->kernel_image, man->initrd, man->cmdline);
	if (rec) {
		r->tsc.freeze_requested = rec->freeze_requested_tsc;
		r->tsc.frozen = rec->frozen_tsc;
		r->tsc.reboot = rec->reboot_tsc;
	}
	if (!picked_up)
		(void)handover_clock_start(&r->tsc.daemon_start);
	report_phase_start(r, REPORT_PHASE_PREPARE, man->prepare_start_us);
	report_phase_end(r, REPORT_PHASE_PREPARE, man->prepare_end_us);
	if (rec) {
		report_phase_start(r, REPORT_PHASE_FREEZE, rec->freeze_requested_us);
		report_phase_end(r, REPORT_PHASE_FREEZE, rec->reboot_us);
		report_phase_start(r, REPORT_PHASE_REBOOT, rec->reboot_us);
	}
	report_phase_end(r, REPORT_PHASE_REBOOT, now);
	report_phase_start(r, REPORT_PHASE_RESTORE, now);

	for (size_t i = 0; i < man->n_vms; i++) {
		ReportVm *rv = report_vm(r, man->vms[i].vm_id);

		if (!rv)
			continue;
		rv->fds = (unsigned)man->vms[i].n_tokens;
		if (rec) {
			rv->freeze_requested_us = rec->freeze_requested_us;
			rv->frozen_us = rec->vm_frozen_us[i];
		}
	}
}

static int on_restore_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	size_t kept = 0;
	int r;

	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (v->fd >= 0 || (v->state != VMM_AWAITING && v->state != VMM_RESTORED))
			continue;
		log_warning("VMM %s did not come back within %llu s; releasing its memory", v->vm_id,
			    (unsigned long long)m->config.restore_timeout_s);
		if (manager_release_vmm(m, v->vm_id, NULL, NULL) < 0)
			kept++;
		/* release may have finished the update */
		if (!m->update)
			return 0;
	}
	if (kept == 0)
		return 0;
	/* a refused FINISH may succeed later (its VMM fixed or closed its device) */
	log_warning("%zu session(s) could not be finished; trying again in %llu s", kept,
		    (unsigned long long)RESTORE_RETRY_S);
	r = sd_event_source_set_time_relative(s, RESTORE_RETRY_S * USEC_PER_SEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		log_warning_errno(r, "Cannot arm the restore timeout again: %m");
	return 0;
}

/*
 * A VM's session: held from the fd store when a previous instance of this
 * boot had already retrieved it, else from the kernel (opening the device
 * only then). -ENOENT: the kernel has no such session any more, because
 * the previous instance finished it when the VM resumed.
 */
static int vm_session(Manager *m, int *luo_fd, const char *name, bool *ret_held)
{
	int fd = manager_take_held(m, name, true);

	*ret_held = fd >= 0;
	if (fd >= 0)
		return fd;
	if (*luo_fd < 0) {
		*luo_fd = luo_open(NULL);
		if (*luo_fd < 0)
			return *luo_fd;
	}
	return luo_retrieve_session(*luo_fd, name);
}

static int restore_sessions(Manager *m, int *luo_fd, Update *u, bool picked_up)
{
	for (size_t i = 0; i < u->manifest->n_vms; i++) {
		const ManifestVm *mvm = &u->manifest->vms[i];
		bool held;
		Vmm *v;
		int fd, r;

		fd = vm_session(m, luo_fd, mvm->session, &held);
		if (fd == -ENOENT && picked_up) {
			log_info("VMM %s resumed before the restart; its session is finished", mvm->vm_id);
			continue;
		}
		if (fd < 0) {
			ReportVm *rv = report_vm(u->report, mvm->vm_id);

			log_error_errno(fd, "Cannot retrieve session %s of VMM %s: %m", mvm->session, mvm->vm_id);
			if (rv)
				rv->outcome = REPORT_VM_FAILED;
			(void)report_set_error(u->report, "vmm-failed", "A VM's session did not survive the kexec");
			continue;
		}
		r = manager_add_absent_vmm(m, mvm, VMM_AWAITING, fd, &v);
		if (r < 0) {
			/* never close it: that would finish it and free the VM's memory */
			if (!held)
				manager_fdstore_add(m, fd, mvm->session);
			(void)manager_hold_fd(m, fd, mvm->session);
			return r;
		}
		if (!held)
			manager_fdstore_add(m, fd, mvm->session);
	}
	return 0;
}

/*
 * Our own session, which carries the manifest: held from the fd store if
 * a previous instance of this boot died while restoring (then we pick its
 * restore up), else retrieved from the kernel. Returns the fd, 0 when
 * there is nothing to restore, or a negative errno.
 */
static int own_session(Manager *m, int *luo_fd, const char *handover_id, bool *ret_picked_up)
{
	int fd = manager_take_held(m, MANIFEST_SESSION_NAME, true);

	*ret_picked_up = fd >= 0;
	if (fd >= 0) {
		log_notice("Picking up the restore a previous instance was doing");
		return fd;
	}

	*luo_fd = luo_open(NULL);
	if (*luo_fd == -ENOENT || *luo_fd == -ENODEV || *luo_fd == -ENXIO) {
		if (handover_id)
			log_error("Update %s was handed over, but this kernel has no " LUO_DEVICE_PATH
				  ": nothing could be carried over", handover_id);
		(void)handover_remove(m->config.state_dir);
		return 0;
	}
	if (*luo_fd == -EIO)
		return log_error_errno(*luo_fd, "The kernel could not read the incoming live update "
				       "(was a module a preserved file needs missing?): %m");
	if (*luo_fd < 0)
		return log_error_errno(*luo_fd, "Cannot open " LUO_DEVICE_PATH ": %m");

	fd = luo_retrieve_session(*luo_fd, MANIFEST_SESSION_NAME);
	if (fd == -ENOENT) {
		if (handover_id)
			log_warning("Update %s was handed over but its session is gone", handover_id);
		(void)handover_remove(m->config.state_dir);
		return 0;
	}
	if (fd < 0)
		return log_error_errno(fd, "Cannot retrieve session " MANIFEST_SESSION_NAME ": %m");
	manager_fdstore_add(m, fd, MANIFEST_SESSION_NAME);
	return fd;
}

int manager_restore_incoming(Manager *m)
{
	_cleanup_free_ char *handover_id = NULL, *json = NULL, *record_json = NULL;
	_cleanup_(commit_record_freep) CommitRecord *rec = NULL;
	_cleanup_(update_freep) Update *u = NULL;
	_cleanup_close_ int luo_fd = -1;
	bool picked_up;
	size_t len;
	usec_t now = manager_now();
	int fd, r;

	load_handover_modules(m, &handover_id);

	fd = own_session(m, &luo_fd, handover_id, &picked_up);
	if (fd <= 0)
		return fd;

	u = calloc(1, sizeof(*u));
	if (!u) {
		(void)manager_hold_fd(m, fd, MANIFEST_SESSION_NAME);
		return log_oom();
	}
	u->session_fd = fd;
	u->record_fd = -1;

	r = read_preserved_json(u->session_fd, MANIFEST_TOKEN, &json, &len);
	if (r >= 0)
		r = manifest_from_json(json, len, &u->manifest);
	if (r < 0) {
		/*
		 * Without a manifest we cannot know whose sessions are whose.
		 * Touch nothing (closing would free memory), say so loudly.
		 */
		log_error_errno(r, "The incoming manifest is unreadable%s: %m; leaving every session "
				"untouched", r == -EPROTONOSUPPORT ? " (unknown version)" : "");
		if (manager_hold_fd(m, u->session_fd, MANIFEST_SESSION_NAME) >= 0)
			u->session_fd = -1;
		return r;
	}
	if (u->manifest->devices_dropped)
		log_warning("The incoming manifest lists devices wrongly; dropped those lists (their "
			    "status is unknown), every VM's memory is restored as usual");
	snprintf(u->id, sizeof(u->id), "%s", u->manifest->update_id);
	if (handover_id && strcmp(handover_id, u->id) != 0)
		log_warning("Handover file names update %s, the kernel carried %s", handover_id, u->id);

	r = read_preserved_json(u->session_fd, COMMIT_RECORD_TOKEN, &record_json, &len);
	if (r >= 0)
		r = commit_record_from_json(record_json, len, u->manifest, &rec);
	if (r < 0)
		log_warning_errno(r, "The commit record is unreadable, freeze times unknown: %m");

	u->report = report_new(u->id);
	u->kernel_image = strdup(u->manifest->kernel_image);
	u->cmdline = strdup(u->manifest->cmdline);
	if (!u->report || !u->kernel_image || !u->cmdline) {
		if (manager_hold_fd(m, u->session_fd, MANIFEST_SESSION_NAME) >= 0)
			u->session_fd = -1;
		return log_oom();
	}
	rebuild_report(u, rec, now, picked_up);

	m->update = TAKE_PTR(u);
	r = restore_sessions(m, &luo_fd, m->update, picked_up);
	if (r < 0)
		log_error_errno(r, "Cannot set up every VM's restore: %m");
	if (!picked_up)
		(void)handover_clock_now(&m->update->report->tsc.restore_ready);
	luo_fd = safe_close(luo_fd);

	log_info("Restoring update %s: %zu VMM(s) to hand back", m->update->id,
		 manager_count_vmms(m, VMM_AWAITING));
	(void)manager_set_state(m, UPDATE_EVENT_INCOMING);

	if (m->config.restore_timeout_s > 0) {
		r = sd_event_add_time_relative(m->event, &m->update->timer, CLOCK_MONOTONIC,
					       m->config.restore_timeout_s * USEC_PER_SEC, 0,
					       on_restore_timeout, m);
		if (r < 0)
			log_warning_errno(r, "Cannot arm the restore timeout: %m");
	}
	manager_update_progress(m);
	return 0;
}

int manager_restore_vmm(Manager *m, Vmm *v)
{
	ReportVm *rv;
	uint64_t tsc = 0;
	int r;

	if (v->state != VMM_AWAITING && v->state != VMM_RESTORED)
		return -EBUSY;

	r = vmm_send_restore(v->fd, m->update->id, v->tokens, (uint32_t)v->n_tokens, v->session_fd);
	if (r < 0)
		return log_warning_errno(r, "Cannot send RESTORE to VMM %s: %m", v->vm_id);
	(void)handover_clock_now(&tsc);

	/* a VMM that comes back after its restore is sent it again; the first counts */
	if (!v->restored_us) {
		v->restored_us = manager_now();
		rv = report_vm(m->update->report, v->vm_id);
		if (rv) {
			rv->restored_us = v->restored_us;
			rv->restore_tsc = tsc;
		}
	}
	/* it restores again: a FINISH that waited for the others waits for its RESUMED now */
	v->finish_deferred = false;
	vmm_set_state(v, VMM_RESTORED);
	manager_update_progress(m);
	return 0;
}

/*
 * FINISH v's session: 0, its VMM then an ordinary one again; or the
 * kernel's refusal, logged and kept in finish_error, the session kept
 * with its VMM (RESTORED), which may say RESUMED again.
 */
static int vmm_finish_session(Manager *m, Vmm *v)
{
	ReportVm *rv;
	int r;

	r = luo_finish(v->session_fd);
	v->finish_error = r < 0 ? r : 0;
	if (r == -EBUSY)
		return log_warning_errno(r, "VMM %s resumed, but the kernel refused to finish its "
					 "session (%m): a device it took over is not attached to a "
					 "domain that maps its guest's memory as before. The device "
					 "still translates through the handed-over page tables; the "
					 "session is kept until RESUMED succeeds", v->vm_id);
	if (r < 0)
		return log_warning_errno(r, "Cannot finish the session of VMM %s: %m; the session is "
					 "kept until RESUMED succeeds", v->vm_id);
	/* the kernel moved its devices to the domains it attached */
	v->hot_swapped = v->n_devices > 0;

	rv = report_vm(m->update->report, v->vm_id);
	if (rv)
		rv->outcome = REPORT_VM_RESUMED;
	log_info("VMM %s resumed; session finished%s", v->vm_id,
		 v->hot_swapped ? ", its devices are on their new domains" : "");
	vmm_drop_session(v);
	/* from now on an ordinary VMM, ready for the next update */
	vmm_set_state(v, VMM_REGISTERED);
	return 0;
}

int manager_vmm_resumed(Manager *m, Vmm *v)
{
	ReportVm *rv;
	uint64_t tsc = 0;
	int r;

	/* the VM runs from here; finishing its session is the daemon's business */
	(void)handover_clock_now(&tsc);
	/* a RESUMED again after a refused FINISH: the first one is when the VM ran */
	if (!v->resumed_us) {
		v->resumed_us = manager_now();
		rv = report_vm(m->update->report, v->vm_id);
		if (rv) {
			rv->resumed_us = v->resumed_us;
			rv->resumed_tsc = tsc;
		}
	}
	if (finish_deferred(v->n_devices, manager_count_vmms(m, VMM_AWAITING))) {
		if (!v->finish_deferred)
			log_info("VMM %s resumed; its session is finished once no VMM awaits its "
				 "restore (the check of its devices' new domains would hold them up)",
				 v->vm_id);
		v->finish_deferred = true;
		return 0;
	}
	r = vmm_finish_session(m, v);
	if (r < 0)
		return r;
	manager_update_progress(m);
	return 0;
}

void manager_finish_deferred(Manager *m)
{
	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (!v->finish_deferred)
			continue;
		v->finish_deferred = false;
		/* a refusal is logged and shown (finish_error); its VMM may say RESUMED again */
		(void)vmm_finish_session(m, v);
	}
}

int manager_release_vmm(Manager *m, const char *vm_id, ControlError *ret_code, char **ret_message)
{
	Vmm *v = manager_find_vmm(m, vm_id);
	int r;

	if (!v || (v->state != VMM_AWAITING && v->state != VMM_RESTORED)) {
		if (ret_code) {
			*ret_code = CONTROL_ERROR_VMM_NOT_FOUND;
			r = asprintf(ret_message, "No VM %s is waiting to be restored", vm_id);
			if (r < 0)
				*ret_message = NULL;
		}
		return -ENOENT;
	}
	if (v->fd >= 0) {
		if (ret_code) {
			*ret_code = CONTROL_ERROR_BAD_STATE;
			r = asprintf(ret_message, "VMM %s is connected; it finishes its own session", vm_id);
			if (r < 0)
				*ret_message = NULL;
		}
		return -EBUSY;
	}

	/*
	 * FINISH frees whatever the VMM never retrieved: that is the point of
	 * releasing. A refused FINISH (a device the VMM took over and still
	 * holds, without a new domain) changes nothing in the kernel, and
	 * closing the session then would strand it, memory and device with
	 * it, until the next reboot: keep it, so a later release can succeed.
	 */
	r = luo_finish(v->session_fd);
	v->finish_error = r < 0 ? r : 0;
	if (r < 0) {
		log_warning_errno(r, "Cannot release VM %s: the kernel refused to finish its session "
				  "(%m); it is kept", v->vm_id);
		if (ret_code) {
			*ret_code = CONTROL_ERROR_BAD_STATE;
			errno = -r;
			r = asprintf(ret_message, "VM %s's session cannot be finished yet: %m; its VMM "
				     "must attach its device to a new domain, or close it", vm_id);
			if (r < 0)
				*ret_message = NULL;
		}
		return -EBUSY;
	}
	log_notice("Released VM %s: its preserved memory is freed", v->vm_id);
	v->finish_deferred = false;
	vmm_drop_session(v);
	/* FINISH succeeded: a device nobody took over was made safe by the kernel */
	vmm_forget_devices(v);
	vmm_set_state(v, VMM_RELEASED);
	manager_update_progress(m);
	return 0;
}
