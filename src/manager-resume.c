/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Before the kexec: the update a previous instance of the daemon left.
 *
 * Its sessions come back from systemd's fd store (manager-held.c), what
 * they are from $STATE_DIRECTORY/update.json (update-file.h). What happens
 * to them depends on the state the update was in when the daemon died:
 *
 *   prepared    picked up: the kexec image is checked (and loaded again if
 *               the kernel lost it), every VM gets its record back with
 *               its session, disconnected, and its VMM claims it with a
 *               HELLO (LU_VMM_REPLY_RESUMED). Commit waits until every VMM
 *               is back; one that is not back within the prepare timeout
 *               aborts the update;
 *   preparing   rolled back: VMMs may have been half way through
 *               preserving, and nobody knows how far;
 *   freezing    rolled back as well: some VMs may be stopped, and the
 *   frozen      operator's commit waited for an answer it will never get.
 *               A reconnecting VMM hears no RESUMED and runs on (a THAW).
 *
 * Rolling back is what any failure before the jump does: every session
 * closed (the kernel unpreserves), the kexec image unloaded. Guest memory
 * never moved, so nothing is lost.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "kexec.h"
#include "log.h"
#include "manager.h"
#include "update-file.h"
#include "vmm-message.h"

static int on_reconnect_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	char slow[512];

	manager_abort(m, CONTROL_ERROR_VMM_FAILED, -ETIMEDOUT,
		      "VMMs did not reconnect within %u ms of the daemon's restart: %s",
		      m->update->prepare_timeout_ms, manager_absent_vmms(m, slow, sizeof(slow)));
	return 0;
}

/* The kernel must still hold the image prepare loaded; load it again if not. */
static int ensure_kexec_loaded(Update *u)
{
	_cleanup_close_ int kfd = -1, ifd = -1;
	int r;

	r = kexec_loaded();
	if (r > 0)
		return 0;
	if (r == 0)
		log_warning("The kernel has no kexec image loaded any more; loading %s again", u->kernel_image);
	else
		log_debug_errno(r, "Cannot tell whether a kexec image is loaded (%m); loading it again");
	kfd = open(u->kernel_image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (kfd < 0)
		return log_error_errno(errno, "Cannot open %s: %m", u->kernel_image);
	if (u->initrd) {
		ifd = open(u->initrd, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (ifd < 0)
			return log_error_errno(errno, "Cannot open %s: %m", u->initrd);
	}
	r = kexec_image_check(kfd);
	if (r >= 0)
		r = kexec_load(kfd, ifd, u->cmdline);
	if (r < 0)
		return log_error_errno(r, "Cannot load %s again: %m", u->kernel_image);
	return 0;
}

/* An Update as far as the file tells it; takes the manifest over. */
static int update_from_file(UpdateFile *f, Update **ret)
{
	_cleanup_(update_freep) Update *u = NULL;
	Manifest *man = f->manifest;

	if (!man)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->session_fd = -1;
	u->record_fd = -1;
	snprintf(u->id, sizeof(u->id), "%s", man->update_id);
	snprintf(u->tag, sizeof(u->tag), "%s", f->tag);
	u->prepare_timeout_ms = f->prepare_timeout_ms;
	u->kernel_image = strdup(man->kernel_image);
	u->initrd = man->initrd ? strdup(man->initrd) : NULL;
	u->cmdline = strdup(man->cmdline);
	u->report = report_new(u->id);
	if (!u->kernel_image || !u->cmdline || (man->initrd && !u->initrd) || !u->report)
		return -ENOMEM;
	(void)report_set_kernel(u->report, u->kernel_image, u->initrd, u->cmdline);
	report_phase_start(u->report, REPORT_PHASE_PREPARE, man->prepare_start_us);
	if (man->prepare_end_us)
		report_phase_end(u->report, REPORT_PHASE_PREPARE, man->prepare_end_us);
	u->manifest = TAKE_PTR(f->manifest);
	*ret = TAKE_PTR(u);
	return 0;
}

/* Every VM of the file gets its record and its session back; all or nothing. */
static int resume_vmms(Manager *m, Manifest *man)
{
	for (size_t i = 0; i < man->n_vms; i++) {
		const ManifestVm *mvm = &man->vms[i];
		Vmm *v;
		int fd, r;

		if (manager_find_vmm(m, mvm->vm_id))
			return log_error_errno(EEXIST, "VM %s is listed twice", mvm->vm_id);
		fd = manager_take_held(m, mvm->session, false);
		if (fd < 0)
			return log_error_errno(fd, "The session %s of VM %s is not in the fd store: %m",
					       mvm->session, mvm->vm_id);
		r = manager_add_absent_vmm(m, mvm, VMM_PREPARED, fd, &v);
		if (r < 0) {
			(void)manager_hold_fd(m, fd, mvm->session);
			return r;
		}
		(void)report_vm(m->update->report, mvm->vm_id);
	}
	return 0;
}

static int resume_prepared(Manager *m, UpdateFile *f)
{
	_cleanup_(update_freep) Update *u = NULL;
	_cleanup_(manifest_freep) Manifest *vms = NULL;
	int r;

	r = update_from_file(f, &u);
	if (r < 0)
		return log_oom();
	r = ensure_kexec_loaded(u);
	if (r < 0)
		return r;
	/* what prepare found of the kernels' support for devices is not in the file */
	r = manager_update_device_refusal(m, u);
	if (r < 0)
		return log_error_errno(r, "Cannot check the kernels' support for devices: %m");
	u->session_fd = manager_take_held(m, MANIFEST_SESSION_NAME, false);
	if (u->session_fd < 0)
		return log_error_errno(u->session_fd, "The session " MANIFEST_SESSION_NAME
				       " is not in the fd store: %m");

	/* the VMs go back into the manifest at commit, from their records */
	vms = calloc(1, sizeof(*vms));
	if (!vms)
		return log_oom();
	vms->vms = TAKE_PTR(u->manifest->vms);
	vms->n_vms = u->manifest->n_vms;
	vms->n_devices = u->manifest->n_devices;
	u->manifest->n_vms = 0;
	u->manifest->n_devices = 0;

	m->update = TAKE_PTR(u);
	r = resume_vmms(m, vms);
	if (r < 0)
		return r;
	/* sessions the file does not know (a VMM that joined as we died): cancel them */
	(void)manager_release_held(m, false);

	(void)manager_set_state(m, UPDATE_EVENT_RESUME);
	r = sd_event_add_time_relative(m->event, &m->update->timer, CLOCK_MONOTONIC,
				       (uint64_t)m->update->prepare_timeout_ms * USEC_PER_MSEC, 0,
				       on_reconnect_timeout, m);
	if (r < 0)
		return log_error_errno(r, "Cannot arm the reconnection deadline: %m");
	log_notice("Resumed prepared update %s: waiting for %zu VMM(s) to reconnect", m->update->id,
		   manager_count_absent(m));
	return 0;
}

/* Roll back whatever the file and the fd store hold, and say so in a report. */
static void roll_back(Manager *m, UpdateFile *f, UpdateState was)
{
	_cleanup_(update_freep) Update *u = NULL;
	size_t n;

	if (f && update_from_file(f, &u) >= 0)
		m->update = TAKE_PTR(u);
	/* the records of a resume that failed half way, and their sessions */
	for (size_t i = m->n_vmms; i > 0; i--) {
		Vmm *v = m->vmms[i - 1];

		if (v->absent)
			vmm_remove(v);
	}
	if (m->update)
		m->update->session_fd = safe_close(m->update->session_fd);
	manager_fdstore_remove(m, MANIFEST_SESSION_NAME);
	n = manager_release_held(m, true);
	(void)kexec_unload();
	(void)handover_remove(m->config.state_dir);
	(void)update_file_remove(m->config.state_dir);
	log_warning("Rolled back update %s, interrupted by a daemon restart while %s: %zu session(s) "
		    "cancelled, every VM runs on this kernel", m->update ? m->update->id : "?",
		    update_state_to_string(was), n);
	if (m->update) {
		char msg[160];

		snprintf(msg, sizeof(msg), "liveupdated restarted while the update was %s; rolled back",
			 update_state_to_string(was));
		(void)report_set_error(m->update->report, control_error_to_string(CONTROL_ERROR_ABORTED), msg);
		manager_finish_report(m, REPORT_ABORTED);
		m->update = update_free(m->update);
	}
	m->state = UPDATE_IDLE;
}

int manager_resume_interrupted(Manager *m)
{
	_cleanup_(update_file_freep) UpdateFile *f = NULL;
	UpdateState was;
	int r;

	r = update_file_read(m->config.state_dir, &f);
	if (r == -ENOENT)
		return 0; /* held sessions without a file stay held, for an abort */
	if (r < 0) {
		log_error_errno(r, "Cannot read %s/" UPDATE_FILE_NAME ": %m; rolling the update back",
				m->config.state_dir);
		roll_back(m, NULL, UPDATE_PREPARING);
		return r;
	}
	was = f->state;
	if (manager_count_held(m, false) == 0) {
		/* no fd store: the kernel cancelled every session when we died */
		log_warning("Update %s was %s when the daemon stopped, and none of its sessions "
			    "survived: it is over", f->manifest->update_id, update_state_to_string(was));
		roll_back(m, f, was);
		return 0;
	}
	if (was == UPDATE_PREPARED) {
		r = resume_prepared(m, f);
		if (r >= 0)
			return 0;
		m->state = UPDATE_IDLE;
		m->update = update_free(m->update);
	}
	roll_back(m, f, was);
	return 0;
}

void manager_persist_update(Manager *m, UpdateState state)
{
	Update *u = m->update;
	_cleanup_(manifest_freep) Manifest *man = NULL;
	UpdateFile f = { .state = state };
	int r;

	if (!u)
		return;
	man = calloc(1, sizeof(*man));
	if (!man)
		return (void)log_oom();
	snprintf(man->update_id, sizeof(man->update_id), "%s", u->id);
	man->kernel_image = strdup(u->kernel_image);
	man->initrd = u->initrd ? strdup(u->initrd) : NULL;
	man->cmdline = strdup(u->cmdline);
	if (!man->kernel_image || !man->cmdline || (u->initrd && !man->initrd))
		return (void)log_oom();
	man->prepare_start_us = u->report->phase_start[REPORT_PHASE_PREPARE];
	man->prepare_end_us = u->report->phase_end[REPORT_PHASE_PREPARE];
	for (size_t i = 0; i < u->manifest->n_modules; i++)
		if (manifest_add_module(man, u->manifest->modules[i]) < 0)
			return (void)log_oom();
	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (!v->vm_id[0] || v->session_fd < 0 || v->state < VMM_PREPARING || v->state > VMM_FROZEN)
			continue;
		r = manifest_add_vm(man, v->vm_id, v->session_name, v->cred.uid, v->tokens, v->n_tokens);
		if (r >= 0)
			r = vmm_devices_to_manifest(v, man, man->n_vms - 1);
		if (r < 0)
			return (void)log_error_errno(r, "Cannot record VM %s: %m", v->vm_id);
	}
	snprintf(f.tag, sizeof(f.tag), "%s", u->tag);
	f.prepare_timeout_ms = u->prepare_timeout_ms;
	f.manifest = man;
	r = update_file_write(m->config.state_dir, &f);
	f.manifest = NULL;
	if (r < 0)
		log_warning_errno(r, "Cannot write %s/" UPDATE_FILE_NAME
				  " (a daemon restart would roll the update back): %m", m->config.state_dir);
}

int manager_vmm_reconnected(Manager *m, Vmm *v, uint32_t seq)
{
	int r;

	r = vmm_send_reply(v->fd, seq, 0, LU_VMM_REPLY_RESUMED, -1);
	if (r < 0)
		return log_warning_errno(r, "VMM %s: cannot send reply: %m", v->vm_id);
	log_info("VMM %s is back (pid %d) for the resumed update %s", v->vm_id, (int)v->cred.pid,
		 m->update->id);
	manager_emit_vmm(m, v);
	if (manager_count_absent(m) == 0) {
		m->update->timer = sd_event_source_disable_unref(m->update->timer);
		log_info("Every VMM of update %s is back: ready to commit", m->update->id);
	}
	manager_notify_status(m);
	return 0;
}
