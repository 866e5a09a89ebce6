/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Prepare, commit, and the way back.
 *
 * Everything slow happens in prepare, while the VMs run: the kernel image
 * is loaded (kexec_file_load reads and checks it), every VMM gets a LUO
 * session and preserves its files. Commit writes the manifest, syncs, and
 * only then opens the blackout: FREEZE goes to every VMM at once, the last
 * acknowledgement triggers the commit record (a few numbers written in
 * place) and reboot(LINUX_REBOOT_CMD_KEXEC). Nothing in that window waits
 * on anything but the VMMs themselves.
 *
 * Until the kernel has jumped, any failure (a VMM that dies, misses its
 * deadline or errs, an operator's abort, reboot() refusing) takes the same
 * path back: every VMM is thawed, every session closed (which is how LUO
 * unpreserves), the kexec image unloaded. Guest memory never moved, so
 * nothing is lost.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cmdline.h"
#include "handover-clock.h"
#include "handover.h"
#include "kexec.h"
#include "log.h"
#include "luo.h"
#include "manager.h"
#include "next-kernel.h"
#include "pci.h"
#include "string-util.h"
#include "update-file.h"
#include "vmm-message.h"

Update *update_free(Update *u)
{
	if (!u)
		return NULL;
	sd_event_source_disable_unref(u->timer);
	safe_close(u->session_fd);
	safe_close(u->record_fd);
	manifest_free(u->manifest);
	report_free(u->report);
	free(u->kernel_image);
	free(u->initrd);
	free(u->cmdline);
	free(u->device_refusal);
	free(u);
	return NULL;
}

/* "20261121T012345Z-1a2b3c4d": sortable, readable, and unique enough per host. */
static int update_new(Update **ret)
{
	_cleanup_(update_freep) Update *u = NULL;
	uint32_t rnd;
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->session_fd = -1;
	u->record_fd = -1;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return negative_errno();
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(u->tag, sizeof(u->tag), "%08x", rnd);
	snprintf(u->id, sizeof(u->id), "%.16s-%.8s", stamp, u->tag);
	u->manifest = calloc(1, sizeof(Manifest));
	u->report = report_new(u->id);
	if (!u->manifest || !u->report)
		return -ENOMEM;
	*ret = TAKE_PTR(u);
	return 0;
}

int manager_set_state(Manager *m, UpdateEvent event)
{
	int next = update_state_next(m->state, event);

	if (next < 0) {
		log_error("Refusing event %s in state %s", update_event_to_string(event),
			  update_state_to_string(m->state));
		return next;
	}
	log_info("Update %s: %s -> %s", m->update ? m->update->id : "-",
		 update_state_to_string(m->state), update_state_to_string(next));
	m->state = next;
	/* what a restarted daemon needs; freezing is written by commit, before the blackout */
	if (next == UPDATE_PREPARING || next == UPDATE_PREPARED)
		manager_persist_update(m, next);
	else if (next == UPDATE_IDLE || next == UPDATE_RESTORING)
		(void)update_file_remove(m->config.state_dir);
	manager_emit_state(m);
	manager_notify_status(m);
	return 0;
}

bool vmm_in_update(const Vmm *v)
{
	return v->vm_id[0] && v->state >= VMM_PREPARING && v->state <= VMM_FROZEN;
}

static int set_error(ControlError *ret_code, char **ret_message, ControlError code, int error,
		     const char *fmt, ...) _printf_(5, 6);
static int set_error(ControlError *ret_code, char **ret_message, ControlError code, int error,
		     const char *fmt, ...)
{
	va_list ap;

	*ret_code = code;
	errno = error < 0 ? -error : error;
	va_start(ap, fmt);
	if (vasprintf(ret_message, fmt, ap) < 0)
		*ret_message = NULL;
	va_end(ap);
	return error < 0 ? error : -EINVAL;
}

static int on_prepare_timeout(sd_event_source *s, uint64_t usec, void *userdata);
static int arm_timer(Manager *m, uint64_t ms, sd_event_time_handler_t handler);

static int create_session(Manager *m, int luo_fd, Vmm *v)
{
	int fd;

	/* a new update: forget the last one's times and devices */
	v->freeze_requested_us = v->frozen_us = v->restored_us = v->resumed_us = 0;
	vmm_forget_devices(v);
	snprintf(v->session_name, sizeof(v->session_name), "lu.%s.%s", m->update->tag, v->vm_id);
	fd = luo_create_session(luo_fd, v->session_name);
	if (fd < 0)
		return fd;
	v->session_fd = fd;
	manager_fdstore_add(m, fd, v->session_name);
	return 0;
}

int vmm_prepare_session(Vmm *v)
{
	Manager *m = v->manager;
	_cleanup_close_ int luo_fd = -1;
	int r;

	/* Held only while used: the device is exclusive, and systemd may want it. */
	luo_fd = luo_open(NULL);
	if (luo_fd < 0)
		return log_error_errno(luo_fd, "Cannot open /dev/liveupdate for VMM %s: %m", v->vm_id);
	r = create_session(m, luo_fd, v);
	if (r < 0)
		return log_error_errno(r, "Cannot create session for VMM %s: %m", v->vm_id);
	r = vmm_send_prepare(v->fd, m->update->id, m->config.max_fds_per_vmm);
	if (r < 0)
		return log_warning_errno(r, "Cannot send PREPARE to VMM %s: %m", v->vm_id);
	vmm_set_state(v, VMM_PREPARING);
	/* a late joiner gets the same deadline the others had */
	if (!m->update->timer) {
		r = arm_timer(m, m->update->prepare_timeout_ms, on_prepare_timeout);
		if (r < 0)
			return log_error_errno(r, "Cannot arm the prepare deadline: %m");
	}
	return 0;
}

static bool vmm_in_state(const Vmm *v, const void *arg)
{
	return v->state == *(const VmmState *)arg;
}

static const char *slow_vmms(Manager *m, VmmState waiting_in, char *buf, size_t size)
{
	return manager_vmm_ids(m, vmm_in_state, &waiting_in, buf, size);
}

static int on_prepare_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	char slow[512];

	manager_abort(m, CONTROL_ERROR_VMM_FAILED, -ETIMEDOUT,
		      "VMMs did not finish preserving within %u ms: %s", m->update->prepare_timeout_ms,
		      slow_vmms(m, VMM_PREPARING, slow, sizeof(slow)));
	return 0;
}

static int on_freeze_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	char slow[512];

	manager_abort(m, CONTROL_ERROR_VMM_FAILED, -ETIMEDOUT, "VMMs did not freeze in time: %s",
		      slow_vmms(m, VMM_FREEZING, slow, sizeof(slow)));
	return 0;
}

static int arm_timer(Manager *m, uint64_t ms, sd_event_time_handler_t handler)
{
	Update *u = m->update;

	u->timer = sd_event_source_disable_unref(u->timer);
	return sd_event_add_time_relative(m->event, &u->timer, CLOCK_MONOTONIC, ms * USEC_PER_MSEC, 0,
					  handler, m);
}

static void disarm_timer(Manager *m)
{
	m->update->timer = sd_event_source_disable_unref(m->update->timer);
}

static int open_image(const char *path, const char *what, ControlError *ret_code, char **ret_message)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, negative_errno(),
				 "Cannot open %s %s: %m", what, path);
	return fd;
}

/*
 * Refuse what is no bzImage, and a next kernel that would boot without
 * finding the guests' memory. Its support for taking devices over goes to
 * ret_devices, for the caller to judge.
 */
static int check_next_kernel(Manager *m, int kfd, const char *image, DeviceSupport *ret_devices,
			     ControlError *ret_code, char **ret_message)
{
	_cleanup_free_ char *config = NULL;
	const char *boot_dir = m->config.boot_dir ?: "/boot";
	char release[NEXT_KERNEL_RELEASE_MAX], missing[256];
	int r;

	r = next_kernel_release(kfd, release);
	if (r == -ENODATA)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "%s names no kernel release in its boot header; cannot tell whether "
				 "it can receive a live update", image);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "%s is not a bootable kernel image: %m", image);

	r = next_kernel_find_config(image, release, m->config.boot_dir, &config);
	if (r == -ENOENT)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "Cannot tell whether %s (linux %s) can receive a live update: no "
				 "config-%s beside it or in %s", image, release, release, boot_dir);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "Cannot read the config of linux %s: %m", release);

	r = next_kernel_check_config(config, missing, sizeof(missing));
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "Cannot read %s: %m", config);
	if (r > 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, -EOPNOTSUPP,
				 "%s (linux %s) cannot receive a live update: %s lacks %s, so the "
				 "guests' memory would not survive the kexec",
				 image, release, config, missing);
	log_debug("Next kernel: linux %s, %s", release, config);
	r = device_support_read(ret_devices, release, config);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r, "Out of memory");
	return 0;
}

/* Devices are bound to vfio-pci, and a kernel cannot carry them over (why). */
static int refuse_devices(const PciDevice *devs, size_t n, const char *why, ControlError *ret_code,
			  char **ret_message)
{
	char list[512];

	pci_format_devices(devs, n, list, sizeof(list));
	return set_error(ret_code, ret_message, CONTROL_ERROR_DEVICE_NOT_PRESERVABLE, -EOPNOTSUPP,
			 "%zu device(s) bound to vfio-pci: %s. %s; the update would reset them under "
			 "their guests. Stop their VMs or unbind them from vfio-pci first", n, list, why);
}

/*
 * With devices bound, both kernels must carry them. Without, the verdict
 * is kept all the same: a device a VMM preserves later is refused by it.
 */
static int check_device_support(Update *u, const PciDevice *devs, size_t n,
				const DeviceSupport *running, const DeviceSupport *next,
				ControlError *ret_code, char **ret_message)
{
	int r = update_set_device_refusal(u, running, next);

	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r, "Out of memory");
	if (n > 0 && u->device_refusal)
		return refuse_devices(devs, n, u->device_refusal, ret_code, ret_message);
	return 0;
}

/* Checks and loading that fail fast, before any VMM hears of the update. */
static int prepare_kernel(Manager *m, Update *u, const PrepareParams *p, const PciDevice *devs,
			  size_t n_devs, const DeviceSupport *running_devices, ControlError *ret_code,
			  char **ret_message)
{
	_cleanup_(device_support_done) DeviceSupport next_devices = {};
	_cleanup_close_ int kfd = -1, ifd = -1;
	_cleanup_free_ char *running = NULL;
	int r;

	kfd = open_image(p->kernel, "kernel image", ret_code, ret_message);
	if (kfd < 0)
		return kfd;
	r = check_next_kernel(m, kfd, p->kernel, &next_devices, ret_code, ret_message);
	if (r < 0)
		return r;
	r = check_device_support(u, devs, n_devs, running_devices, &next_devices, ret_code,
				 ret_message);
	if (r < 0)
		return r;
	if (p->initrd) {
		ifd = open_image(p->initrd, "initrd", ret_code, ret_message);
		if (ifd < 0)
			return ifd;
	}

	if (!p->cmdline) {
		r = cmdline_read_running(m->config.proc_cmdline, &running);
		if (r < 0)
			return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r,
					 "Cannot read the running kernel's command line: %m");
	}
	r = cmdline_build(p->cmdline ?: running, p->append, &u->cmdline);
	if (r == -EINVAL)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INVALID_REQUEST, r,
				 "The command line turns liveupdate or kho off; a live update needs both on");
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INVALID_REQUEST, r,
				 "Cannot build the command line: %m");

	u->kernel_image = strdup(p->kernel);
	u->initrd = p->initrd ? strdup(p->initrd) : NULL;
	if (!u->kernel_image || (p->initrd && !u->initrd))
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, -ENOMEM, "Out of memory");

	r = kexec_load(kfd, ifd, u->cmdline);
	if (r == -ENOEXEC || r == -EKEYREJECTED || r == -EBADMSG)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KERNEL_IMAGE, r,
				 "The kernel refused to load %s: %m", p->kernel);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_KEXEC_LOAD, r,
				 "kexec_file_load of %s failed: %m", p->kernel);
	return 0;
}

/*
 * A device bound to vfio-pci is DMAing into some guest's memory through the
 * IOMMU; the kexec would reset it under its guest unless both kernels can
 * carry it over. The running kernel is asked here, before anything
 * happens; the next one once its image names its release.
 */
/* A device bound to a vfio-pci variant driver has no hand-over, whatever the kernels can do. */
static int check_variant_drivers(const PciDevice *devs, size_t n, ControlError *ret_code,
				 char **ret_message)
{
	_cleanup_free_ PciDevice *variants = NULL;
	size_t k = 0;
	char list[512];

	for (size_t i = 0; i < n; i++)
		k += pci_variant_driver(&devs[i]);
	if (k == 0)
		return 0;
	variants = calloc(k, sizeof(PciDevice));
	if (!variants)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, -ENOMEM, "Out of memory");
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (pci_variant_driver(&devs[i]))
			variants[k++] = devs[i];
	pci_format_devices(variants, k, list, sizeof(list));
	return set_error(ret_code, ret_message, CONTROL_ERROR_DEVICE_NOT_PRESERVABLE, -EOPNOTSUPP,
			 "%zu device(s) bound to a vfio-pci variant driver (%s first): %s. Only "
			 "vfio-pci itself is handed over; the update would reset them under their "
			 "guests. Stop their VMs or unbind them first", k, variants[0].driver, list);
}

static int check_running_kernel(Manager *m, PciDevice **ret_devs, size_t *ret_n,
				DeviceSupport *ret_running, ControlError *ret_code,
				char **ret_message)
{
	char why[512];
	int r;

	r = manager_bound_devices(m, ret_devs, ret_n);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r,
				 "Cannot list PCI devices (is sysfs mounted?): %m");
	r = check_variant_drivers(*ret_devs, *ret_n, ret_code, ret_message);
	if (r < 0)
		return r;
	r = manager_running_support(m, ret_running);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r,
				 "Cannot read the running kernel's config: %m");
	if (*ret_n == 0 || device_support_ok(ret_running))
		return 0;
	device_support_explain(ret_running, "running", why, sizeof(why));
	return refuse_devices(*ret_devs, *ret_n, why, ret_code, ret_message);
}

int manager_prepare(Manager *m, const PrepareParams *p, ControlError *ret_code, char **ret_message)
{
	_cleanup_(device_support_done) DeviceSupport running_devices = {};
	_cleanup_(update_freep) Update *u = NULL;
	_cleanup_free_ PciDevice *devs = NULL;
	_cleanup_close_ int luo_fd = -1;
	size_t n_devs = 0;
	int r;

	if (m->state != UPDATE_IDLE)
		return set_error(ret_code, ret_message, CONTROL_ERROR_BAD_STATE, -EBUSY,
				 "Update %s is already %s", m->update ? m->update->id : "?",
				 update_state_to_string(m->state));

	if (m->n_held > 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_BAD_STATE, -EBUSY,
				 "%zu session(s) of an interrupted update are held from the fd store; "
				 "abort releases them", m->n_held);

	r = check_running_kernel(m, &devs, &n_devs, &running_devices, ret_code, ret_message);
	if (r < 0)
		return r;

	luo_fd = luo_open(NULL);
	if (luo_fd < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_LUO_UNAVAILABLE, luo_fd,
				 "Cannot open " LUO_DEVICE_PATH ": %m (a kernel with CONFIG_LIVEUPDATE, "
				 "booted with liveupdate=on, is needed)");

	r = update_new(&u);
	if (r < 0)
		return set_error(ret_code, ret_message, CONTROL_ERROR_INTERNAL, r, "Out of memory");
	report_phase_start(u->report, REPORT_PHASE_PREPARE, manager_now());
	u->prepare_timeout_ms = p->timeout_ms ?: m->config.prepare_timeout_ms;
	u->manifest->prepare_start_us = u->report->phase_start[REPORT_PHASE_PREPARE];

	r = prepare_kernel(m, u, p, devs, n_devs, &running_devices, ret_code, ret_message);
	if (r < 0)
		return r;

	u->session_fd = luo_create_session(luo_fd, MANIFEST_SESSION_NAME);
	if (u->session_fd < 0) {
		(void)kexec_unload();
		return set_error(ret_code, ret_message, CONTROL_ERROR_LUO_UNAVAILABLE, u->session_fd,
				 "Cannot create the session " MANIFEST_SESSION_NAME ": %m");
	}
	manager_fdstore_add(m, u->session_fd, MANIFEST_SESSION_NAME);
	(void)report_set_kernel(u->report, u->kernel_image, u->initrd, u->cmdline);
	log_info("Prepared kernel %s%s%s, command line \"%s\"", u->kernel_image,
		 u->initrd ? " with initrd " : "", u->initrd ?: "", u->cmdline);

	m->update = TAKE_PTR(u);
	(void)manager_set_state(m, UPDATE_EVENT_PREPARE);

	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (!v->vm_id[0] || v->state != VMM_REGISTERED || v->fd < 0)
			continue;
		r = create_session(m, luo_fd, v);
		if (r < 0) {
			manager_abort(m, CONTROL_ERROR_LUO_UNAVAILABLE, r,
				      "Cannot create the session for VMM %s: %m", v->vm_id);
			return 0; /* answered through the waiter */
		}
		r = vmm_send_prepare(v->fd, m->update->id, m->config.max_fds_per_vmm);
		if (r < 0) /* its hangup will follow and abort */
			log_warning_errno(r, "Cannot send PREPARE to VMM %s: %m", v->vm_id);
		vmm_set_state(v, VMM_PREPARING);
	}

	r = arm_timer(m, m->update->prepare_timeout_ms, on_prepare_timeout);
	if (r < 0) {
		manager_abort(m, CONTROL_ERROR_INTERNAL, r, "Cannot arm the prepare deadline: %m");
		return 0;
	}
	manager_update_progress(m);
	return 0;
}

/* The manifest in its memfd, and the empty commit record, both preserved in our session. */
static int preserve_manifest(Manager *m)
{
	Update *u = m->update;
	Manifest *man = u->manifest;
	_cleanup_free_ char *json = NULL;
	_cleanup_close_ int fd = -1;
	size_t len;
	int r;

	snprintf(man->update_id, sizeof(man->update_id), "%s", u->id);
	free(man->kernel_image);
	free(man->initrd);
	free(man->cmdline);
	man->kernel_image = strdup(u->kernel_image);
	man->initrd = u->initrd ? strdup(u->initrd) : NULL;
	man->cmdline = strdup(u->cmdline);
	if (!man->kernel_image || !man->cmdline || (u->initrd && !man->initrd))
		return -ENOMEM;
	man->prepare_end_us = u->report->phase_end[REPORT_PHASE_PREPARE];
	man->commit_us = manager_now();

	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (!vmm_in_update(v))
			continue;
		v->manifest_slot = man->n_vms;
		r = manifest_add_vm(man, v->vm_id, v->session_name, v->cred.uid, v->tokens, v->n_tokens);
		if (r >= 0)
			r = vmm_devices_to_manifest(v, man, man->n_vms - 1);
		if (r < 0)
			return r;
	}

	r = manifest_to_json(man, &json, &len);
	if (r < 0)
		return r;
	fd = manifest_memfd_new("liveupdated-manifest", json, len, len);
	if (fd < 0)
		return fd;
	r = luo_preserve_fd(u->session_fd, fd, MANIFEST_TOKEN);
	if (r < 0)
		return r;

	u->record_capacity = commit_record_capacity(man->n_vms);
	u->record_fd = manifest_memfd_new("liveupdated-commit", "", 0, u->record_capacity);
	if (u->record_fd < 0)
		return u->record_fd;
	return luo_preserve_fd(u->session_fd, u->record_fd, COMMIT_RECORD_TOKEN);
}

/* The coverage check (manager-devices.c): a failure aborts the update like any other. */
static int abort_uncovered(Manager *m)
{
	_cleanup_free_ char *message = NULL;
	int r = manager_check_coverage(m, &message);

	if (r >= 0)
		return 0;
	manager_abort(m, r == -EOPNOTSUPP ? CONTROL_ERROR_DEVICE_NOT_PRESERVABLE : CONTROL_ERROR_INTERNAL,
		      r, "%s", message ?: "Cannot check the passed-through devices");
	return r;
}

int manager_commit(Manager *m, const CommitParams *p, ControlError *ret_code, char **ret_message)
{
	uint32_t timeout = p->freeze_timeout_ms ?: m->config.freeze_timeout_ms;
	Update *u = m->update;
	usec_t now;
	int r;

	if (m->state != UPDATE_PREPARED)
		return set_error(ret_code, ret_message, CONTROL_ERROR_BAD_STATE, -EBUSY,
				 m->state == UPDATE_IDLE ? "Nothing is prepared" :
				 m->state == UPDATE_PREPARING ? "VMMs are still preserving their files" :
				 "The update is already past prepare");
	if (manager_count_absent(m) > 0) {
		char absent[512];

		return set_error(ret_code, ret_message, CONTROL_ERROR_BAD_STATE, -EAGAIN,
				 "VMMs have not reconnected since the daemon restarted: %s",
				 manager_absent_vmms(m, absent, sizeof(absent)));
	}

	/* a device bound to vfio-pci since prepare would be reset as well */
	r = abort_uncovered(m);
	if (r < 0)
		return 0;
	r = preserve_manifest(m);
	if (r < 0) {
		manager_abort(m, CONTROL_ERROR_INTERNAL, r, "Cannot preserve the manifest: %m");
		return 0;
	}
	r = handover_write(m->config.state_dir, u->manifest);
	if (r < 0) {
		manager_abort(m, CONTROL_ERROR_INTERNAL, r, "Cannot write %s/" HANDOVER_FILE_NAME ": %m",
			      m->config.state_dir);
		return 0;
	}
	/* a daemon restart from here on rolls back: VMs may be stopped */
	manager_persist_update(m, UPDATE_FREEZING);
	/* Flush now, while the VMs run, so the sync inside the blackout has little left. */
	sync();

	r = arm_timer(m, timeout, on_freeze_timeout);
	if (r < 0) {
		manager_abort(m, CONTROL_ERROR_INTERNAL, r, "Cannot arm the freeze deadline: %m");
		return 0;
	}

	/* The blackout starts here: FREEZE to every VMM at once, no waiting in between. */
	(void)handover_clock_now(&u->freeze_requested_tsc);
	now = manager_now();
	u->freeze_requested_us = now;
	report_phase_start(u->report, REPORT_PHASE_FREEZE, now);
	(void)manager_set_state(m, UPDATE_EVENT_COMMIT);
	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (!vmm_in_update(v))
			continue;
		v->freeze_requested_us = now;
		r = vmm_send_freeze(v->fd, timeout);
		if (r < 0)
			log_warning_errno(r, "Cannot send FREEZE to VMM %s: %m", v->vm_id);
		vmm_set_state(v, VMM_FREEZING);
	}
	manager_update_progress(m);
	return 0;
}

static void write_commit_record(Manager *m)
{
	Update *u = m->update;
	Manifest *man = u->manifest;
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ usec_t *frozen = NULL;
	CommitRecord rec = { .freeze_requested_us = u->freeze_requested_us, .frozen_us = u->frozen_us,
			     .freeze_requested_tsc = u->freeze_requested_tsc, .frozen_tsc = u->frozen_tsc };
	int len;

	buf = calloc(1, u->record_capacity);
	frozen = calloc(man->n_vms ?: 1, sizeof(usec_t));
	if (!buf || !frozen)
		return (void)log_oom();
	/* each VMM by the slot commit gave it: a lookup by id per VM would be
	 * quadratic, and this runs inside the blackout */
	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];

		if (v->vm_id[0] && v->manifest_slot < man->n_vms &&
		    strcmp(man->vms[v->manifest_slot].vm_id, v->vm_id) == 0)
			frozen[v->manifest_slot] = v->frozen_us;
	}
	snprintf(rec.update_id, sizeof(rec.update_id), "%s", u->id);
	rec.vm_frozen_us = frozen;
	rec.n_vms = man->n_vms;
	rec.reboot_us = manager_now();
	(void)handover_clock_now(&rec.reboot_tsc);

	len = commit_record_to_json(&rec, buf, u->record_capacity);
	if (len < 0 || pwrite(u->record_fd, buf, (size_t)len, 0) != len)
		log_warning("Cannot write the commit record; the next boot's report will lack the freeze times");
}

static void reboot_now(Manager *m)
{
	Update *u = m->update;
	json_object *result;
	usec_t now;
	int r;

	now = manager_now();
	report_phase_end(u->report, REPORT_PHASE_FREEZE, now);
	report_phase_start(u->report, REPORT_PHASE_REBOOT, now);
	(void)manager_set_state(m, UPDATE_EVENT_REBOOT);

	result = json_object_new_object();
	json_object_object_add(result, "update_id", json_object_new_string(u->id));
	json_object_object_add(result, "state", json_object_new_string("rebooting"));
	json_object_object_add(result, "freeze_us", json_object_new_uint64(u->frozen_us - u->freeze_requested_us));
	manager_reply_waiter(m, result, 0, 0, NULL);

	log_info("All %zu VMMs frozen in %llu us; jumping into the new kernel", u->manifest->n_vms,
		 (unsigned long long)(u->frozen_us - u->freeze_requested_us));
	/* last: its reboot stamp is the closest we get to the jump */
	write_commit_record(m);
	r = kexec_reboot();
	/* Still here: the kernel rolled the freeze back and refused. */
	manager_abort(m, CONTROL_ERROR_REBOOT_FAILED, r, "The kernel refused the kexec: %m");
}

static bool any_vmm_in(Manager *m, VmmState s)
{
	return manager_count_vmms(m, s) > 0;
}

void manager_update_progress(Manager *m)
{
	Update *u = m->update;
	json_object *result;
	usec_t now;
	int r;

	switch (m->state) {
	case UPDATE_PREPARING:
		if (any_vmm_in(m, VMM_PREPARING))
			return;
		if (abort_uncovered(m) < 0)
			return;
		disarm_timer(m);
		now = manager_now();
		report_phase_end(u->report, REPORT_PHASE_PREPARE, now);
		(void)manager_set_state(m, UPDATE_EVENT_ALL_PREPARED);
		result = json_object_new_object();
		json_object_object_add(result, "update_id", json_object_new_string(u->id));
		json_object_object_add(result, "state", json_object_new_string("prepared"));
		json_object_object_add(result, "cmdline", json_object_new_string(u->cmdline));
		json_object_object_add(result, "vmms", json_object_new_int((int)manager_count_vmms(m, VMM_PREPARED)));
		json_object_object_add(result, "duration_us",
				       json_object_new_uint64(now - u->report->phase_start[REPORT_PHASE_PREPARE]));
		manager_reply_waiter(m, result, 0, 0, NULL);
		return;

	case UPDATE_FREEZING:
		if (any_vmm_in(m, VMM_FREEZING))
			return;
		(void)handover_clock_now(&u->frozen_tsc);
		disarm_timer(m);
		u->frozen_us = manager_now();
		(void)manager_set_state(m, UPDATE_EVENT_ALL_FROZEN);
		reboot_now(m);
		return;

	case UPDATE_RESTORING:
		if (any_vmm_in(m, VMM_AWAITING))
			return;
		report_phase_end(u->report, REPORT_PHASE_RESTORE, manager_now());
		report_phase_start(u->report, REPORT_PHASE_FINISH, u->report->phase_end[REPORT_PHASE_RESTORE]);
		(void)manager_set_state(m, UPDATE_EVENT_ALL_RESTORED);
		manager_finish_deferred(m);
		_fallthrough_;
	case UPDATE_FINISHING:
		if (any_vmm_in(m, VMM_RESTORED))
			return;
		report_phase_end(u->report, REPORT_PHASE_FINISH, manager_now());
		/* a VM released, or whose session did not survive, is a failure */
		manager_finish_report(m, manager_count_vmms(m, VMM_RELEASED) > 0 || u->report->error_code ?
						 REPORT_FAILED : REPORT_SUCCESS);
		/* Our own session goes last: it carried the manifest. */
		r = luo_finish(u->session_fd);
		if (r < 0)
			log_warning_errno(r, "Cannot finish session " MANIFEST_SESSION_NAME ": %m");
		manager_fdstore_remove(m, MANIFEST_SESSION_NAME);
		(void)handover_remove(m->config.state_dir);
		for (size_t i = m->n_vmms; i > 0; i--)
			if (m->vmms[i - 1]->state == VMM_RELEASED)
				vmm_remove(m->vmms[i - 1]);
		(void)manager_set_state(m, UPDATE_EVENT_ALL_FINISHED);
		m->update = update_free(m->update);
		manager_notify_status(m);
		return;

	default:
		return;
	}
}

void manager_abort(Manager *m, ControlError code, int error, const char *fmt, ...)
{
	_cleanup_free_ char *message = NULL;
	Update *u = m->update;
	va_list ap;
	int r;

	errno = error < 0 ? -error : error;
	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	va_end(ap);

	/* an operator may abort until the last VMM froze; a failure rolls back until the jump */
	if (!u || update_state_next(m->state, code == CONTROL_ERROR_ABORTED ? UPDATE_EVENT_ABORT :
							UPDATE_EVENT_FAIL) < 0) {
		log_error("Cannot abort in state %s: %s", update_state_to_string(m->state), message ?: "");
		return;
	}
	log_error("Aborting update %s in state %s: %s", u->id, update_state_to_string(m->state),
		  message ?: "");
	(void)report_set_error(u->report, control_error_to_string(code), message);

	/* Close every session: the kernel unpreserves; then tell each VMM to run on. */
	for (size_t i = 0; i < m->n_vmms; i++) {
		Vmm *v = m->vmms[i];
		bool involved = vmm_in_update(v);

		vmm_drop_session(v);
		if (!involved)
			continue;
		vmm_forget_devices(v);
		if (v->fd >= 0 && vmm_send_thaw(v->fd, error < 0 ? error : -ECANCELED) < 0)
			log_warning("Cannot send THAW to VMM %s", v->vm_id);
		ReportVm *rv = report_vm(u->report, v->vm_id);
		if (rv && rv->outcome == REPORT_VM_PENDING)
			rv->outcome = REPORT_VM_THAWED;
		vmm_set_state(v, VMM_REGISTERED);
	}
	/* records of a resumed update whose VMM never came back: nothing to thaw */
	for (size_t i = m->n_vmms; i > 0; i--)
		if (m->vmms[i - 1]->absent)
			vmm_remove(m->vmms[i - 1]);
	u->session_fd = safe_close(u->session_fd);
	u->record_fd = safe_close(u->record_fd);
	manager_fdstore_remove(m, MANIFEST_SESSION_NAME);
	r = kexec_unload();
	if (r < 0)
		log_warning_errno(r, "Cannot unload the next kernel: %m");
	(void)handover_remove(m->config.state_dir);

	manager_finish_report(m, REPORT_ABORTED);
	(void)manager_set_state(m, code == CONTROL_ERROR_ABORTED ? UPDATE_EVENT_ABORT : UPDATE_EVENT_FAIL);
	manager_reply_waiter(m, NULL, code, error, message);
	m->update = update_free(m->update);
	manager_notify_status(m);
}

void manager_vmm_lost(Manager *m, Vmm *v)
{
	ReportVm *rv;

	switch (v->state) {
	case VMM_FROZEN:
		/* Its VM is stopped and its whole state is in the session we hold:
		 * the kexec carries it, and it gets its VM back when it returns.
		 * Aborting now would free memory the update can save. */
		if (m->state == UPDATE_FREEZING || m->state == UPDATE_FROZEN) {
			log_warning("VMM %s went away after freezing; its VM is preserved and "
				    "the update goes on", v->vm_id);
			break;
		}
		_fallthrough_;
	case VMM_PREPARING:
	case VMM_PREPARED:
	case VMM_FREEZING:
		if (m->update && (rv = report_vm(m->update->report, v->vm_id)))
			rv->outcome = REPORT_VM_FAILED;
		manager_abort(m, CONTROL_ERROR_VMM_FAILED, -ECONNRESET, "VMM %s disconnected while %s",
			      v->vm_id, vmm_state_to_string(v->state));
		vmm_remove(v);
		break;
	case VMM_AWAITING:
	case VMM_RESTORED:
		/* Its session (and memory) stays until it comes back or is released. */
		log_warning("VMM %s went away before resuming; keeping its session", v->vm_id);
		break;
	default:
		vmm_remove(v);
		/* it may have been the one everybody waited for */
		manager_update_progress(m);
		break;
	}
	manager_notify_status(m);
}
