/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Passed-through devices across an update.
 *
 * A device bound to vfio-pci DMAs into its guest's memory through the
 * IOMMU; the kexec would reset it under the guest unless the kernels carry
 * it over. The project's kernel can (kernel/patches): a VMM preserves, in
 * its session and in this order, the guest RAM memfd, the iommufd and the
 * device file; after the kexec the device translates through the handed-
 * over page tables (its "restored domain") until the FINISH of that
 * session moves it to the domain the VMM rebuilt ("hot-swapped").
 *
 * The daemon refuses what would lose a device: a prepare with devices
 * bound when either kernel lacks the options (manager-update.c), and an
 * update in which a bound device was preserved by no VMM (the coverage
 * check, when every VMM has answered PREPARE and at commit). To know who
 * preserved what, it looks at every file a VMM hands it: a VFIO device
 * file is recorded with its PCI slot, per VMM and in the manifest. A file
 * a VMM preserves into its session itself cannot be looked at, so devices
 * must go through the daemon.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device-coverage.h"
#include "device-status.h"
#include "log.h"
#include "manager.h"
#include "next-kernel.h"
#include "vfio-device.h"

int manager_bound_devices(Manager *m, PciDevice **ret, size_t *ret_n)
{
	_cleanup_free_ char *path = NULL;

	if (!m->config.sysfs_dir)
		return pci_passthrough_devices(NULL, ret, ret_n);
	if (asprintf(&path, "%s/bus/pci", m->config.sysfs_dir) < 0)
		return -ENOMEM;
	return pci_passthrough_devices(path, ret, ret_n);
}

int manager_running_support(Manager *m, DeviceSupport *ret)
{
	return device_support_running(ret, m->config.boot_dir);
}

int update_set_device_refusal(Update *u, const DeviceSupport *running, const DeviceSupport *next)
{
	char why[512];

	free(u->device_refusal);
	u->device_refusal = NULL;
	if (!device_support_ok(running))
		device_support_explain(running, "running", why, sizeof(why));
	else if (!device_support_ok(next))
		device_support_explain(next, "next", why, sizeof(why));
	else
		return 0;
	u->device_refusal = strdup(why);
	return u->device_refusal ? 0 : -ENOMEM;
}

/* The next kernel's release and config, as prepare found them; left unknown on any error. */
static int next_support(Manager *m, const char *image, DeviceSupport *ret)
{
	_cleanup_free_ char *config = NULL;
	_cleanup_close_ int fd = -1;
	char release[NEXT_KERNEL_RELEASE_MAX];

	fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || next_kernel_release(fd, release) < 0 ||
	    next_kernel_find_config(image, release, m->config.boot_dir, &config) < 0)
		return 0;
	return device_support_read(ret, release, config);
}

int manager_update_device_refusal(Manager *m, Update *u)
{
	_cleanup_(device_support_done) DeviceSupport running = {}, next = {};
	int r;

	r = manager_running_support(m, &running);
	if (r >= 0)
		r = next_support(m, u->kernel_image, &next);
	if (r >= 0)
		r = update_set_device_refusal(u, &running, &next);
	return r;
}

static bool vmm_has_device(const Vmm *v, const char *slot)
{
	for (size_t i = 0; i < v->n_devices; i++)
		if (strcmp(v->devices[i], slot) == 0)
			return true;
	return false;
}

/* The VMM of the update in flight that preserved the device, or NULL. */
static Vmm *device_owner(Manager *m, const char *slot)
{
	for (size_t i = 0; i < m->n_vmms; i++)
		if (vmm_in_update(m->vmms[i]) && vmm_has_device(m->vmms[i], slot))
			return m->vmms[i];
	return NULL;
}

static size_t devices_in_update(Manager *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_vmms; i++)
		if (vmm_in_update(m->vmms[i]))
			n += m->vmms[i]->n_devices;
	return n;
}

int vmm_device_of_fd(Vmm *v, int fd, PciSlot ret)
{
	Manager *m = v->manager;
	Vmm *owner;
	int r;

	/* no fd: the kernel refuses it */
	if (fd < 0)
		return 0;
	r = vfio_device_slot(fd, m->config.sysfs_dir, ret);
	if (r == -ENODEV)
		return 0;
	/* a device we cannot name could not be accounted for: the coverage check would fail */
	if (r < 0)
		return log_warning_errno(r, "VMM %s: cannot tell which device its file is: %m",
					 v->vm_id);
	if (m->update->device_refusal) {
		log_warning("VMM %s: refusing to preserve device %s: %s", v->vm_id, ret,
			    m->update->device_refusal);
		return -EOPNOTSUPP;
	}
	owner = device_owner(m, ret);
	if (owner) {
		log_warning("VMM %s: device %s is already preserved by VMM %s", v->vm_id, ret,
			    owner->vm_id);
		return -EBUSY;
	}
	/* the manifest's bound; no host passes that many through */
	if (devices_in_update(m) >= MANIFEST_DEVICES_MAX)
		return -E2BIG;
	return 1;
}

int vmm_add_device(Vmm *v, const char *slot)
{
	PciSlot *a;

	/* bounded by the VMM's tokens, which check_token_request() bounds */
	a = reallocarray(v->devices, v->n_devices + 1, sizeof(PciSlot));
	if (!a)
		return -ENOMEM;
	v->devices = a;
	snprintf(v->devices[v->n_devices++], sizeof(PciSlot), "%s", slot);
	return 0;
}

void vmm_forget_devices(Vmm *v)
{
	free(v->devices);
	v->devices = NULL;
	v->n_devices = 0;
	v->hot_swapped = false;
	v->finish_error = 0;
}

int vmm_devices_to_manifest(const Vmm *v, Manifest *man, size_t vm)
{
	for (size_t i = 0; i < v->n_devices; i++) {
		int r = manifest_add_device(man, vm, v->devices[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

int manager_check_coverage(Manager *m, char **ret_message)
{
	_cleanup_free_ PciDevice *devs = NULL;
	_cleanup_free_ PciSlot *preserved = NULL;
	size_t n = 0, n_preserved = 0, k;
	char list[1024];
	int r;

	r = manager_bound_devices(m, &devs, &n);
	if (r < 0) {
		if (asprintf(ret_message, "Cannot list PCI devices: %s", strerror(-r)) < 0)
			*ret_message = NULL;
		return r;
	}
	if (n == 0)
		return 0;

	n_preserved = devices_in_update(m);
	preserved = calloc(n_preserved ?: 1, sizeof(PciSlot));
	if (!preserved)
		return -ENOMEM;
	n_preserved = 0;
	for (size_t i = 0; i < m->n_vmms; i++)
		for (size_t j = 0; vmm_in_update(m->vmms[i]) && j < m->vmms[i]->n_devices; j++)
			memcpy(preserved[n_preserved++], m->vmms[i]->devices[j], sizeof(PciSlot));

	k = device_uncovered(devs, n, preserved, n_preserved);
	if (k == 0)
		return 0;
	device_uncovered_message(devs, k, list, sizeof(list));
	if (asprintf(ret_message, "%s. A VMM must hand its device files to liveupdated "
		     "(lu_vmm_preserve_fd()); one it preserves into its session itself cannot be "
		     "accounted for", list) < 0)
		*ret_message = NULL;
	return -EOPNOTSUPP;
}

/* How far the devices v preserved have come, from its state. */
static DeviceHandover vmm_handover(const Vmm *v)
{
	switch (v->state) {
	case VMM_PREPARING:
	case VMM_PREPARED:
	case VMM_FREEZING:
	case VMM_FROZEN:
		return DEVICE_HANDOVER_PRESERVED;
	case VMM_AWAITING:
	case VMM_RESTORED:
		return DEVICE_HANDOVER_RESTORED_DOMAIN;
	case VMM_REGISTERED:
		return v->hot_swapped ? DEVICE_HANDOVER_HOT_SWAPPED : DEVICE_HANDOVER_NONE;
	default:
		return DEVICE_HANDOVER_NONE;
	}
}

/* Before the kexec the update's kernels decide; otherwise the one running. */
static int support_now(Manager *m, bool *ret_ok, char **ret_reason)
{
	_cleanup_(device_support_done) DeviceSupport running = {};
	char why[512];
	int r;

	if (m->update && update_state_abortable(m->state)) {
		*ret_ok = !m->update->device_refusal;
		*ret_reason = m->update->device_refusal ? strdup(m->update->device_refusal) : NULL;
		return *ret_ok || *ret_reason ? 0 : -ENOMEM;
	}
	r = manager_running_support(m, &running);
	if (r < 0)
		return r;
	*ret_ok = device_support_ok(&running);
	device_support_explain(&running, "running", why, sizeof(why));
	*ret_reason = *ret_ok ? NULL : strdup(why);
	return *ret_ok || *ret_reason ? 0 : -ENOMEM;
}

json_object *manager_devices_json(Manager *m)
{
	_cleanup_free_ PciDevice *devs = NULL;
	_cleanup_free_ DeviceTrack *tracked = NULL;
	_cleanup_free_ char *reason = NULL;
	size_t n_devs = 0, n_tracked = 0;
	bool ok = false;

	if (manager_bound_devices(m, &devs, &n_devs) < 0)
		n_devs = 0;
	for (size_t i = 0; i < m->n_vmms; i++)
		n_tracked += m->vmms[i]->n_devices;
	if (n_devs + n_tracked == 0)
		return json_object_new_array();

	tracked = calloc(n_tracked ?: 1, sizeof(DeviceTrack));
	if (!tracked || support_now(m, &ok, &reason) < 0)
		return json_object_new_array();
	n_tracked = 0;
	for (size_t i = 0; i < m->n_vmms; i++) {
		const Vmm *v = m->vmms[i];

		for (size_t j = 0; v->vm_id[0] && j < v->n_devices; j++)
			tracked[n_tracked++] = (DeviceTrack){ .slot = v->devices[j],
							      .vm_id = v->vm_id,
							      .handover = vmm_handover(v),
							      .finish_error = v->finish_error };
	}
	return device_status_json(devs, n_devs, tracked, n_tracked, ok, reason);
}

json_object *vmm_devices_json(const Vmm *v)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < v->n_devices; i++)
		json_object_array_add(a, json_object_new_string(v->devices[i]));
	return a;
}
