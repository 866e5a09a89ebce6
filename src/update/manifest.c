/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "manifest.h"
#include "string-util.h"
#include "luo.h"

#define MANIFEST_FORMAT "liveupdated-manifest"
#define COMMIT_RECORD_FORMAT "liveupdated-commit"

static void json_putp(json_object **o)
{
	json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

Manifest *manifest_free(Manifest *m)
{
	if (!m)
		return NULL;
	free(m->kernel_image);
	free(m->initrd);
	free(m->cmdline);
	for (size_t i = 0; i < m->n_modules; i++)
		free(m->modules[i]);
	free(m->modules);
	for (size_t i = 0; i < m->n_vms; i++) {
		free(m->vms[i].tokens);
		free(m->vms[i].devices);
	}
	free(m->vms);
	free(m);
	return NULL;
}

CommitRecord *commit_record_free(CommitRecord *r)
{
	if (!r)
		return NULL;
	free(r->vm_frozen_us);
	free(r);
	return NULL;
}

static int module_name_valid(const char *s)
{
	size_t n = strnlen(s, MANIFEST_MODULE_NAME_MAX + 1);

	if (n == 0 || n > MANIFEST_MODULE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

int manifest_add_module(Manifest *m, const char *module)
{
	char **a;

	if (!module_name_valid(module))
		return -EINVAL;
	for (size_t i = 0; i < m->n_modules; i++)
		if (strcmp(m->modules[i], module) == 0)
			return 0;
	if (m->n_modules >= MANIFEST_MODULES_MAX)
		return -E2BIG;
	a = reallocarray(m->modules, m->n_modules + 1, sizeof(char *));
	if (!a)
		return -ENOMEM;
	m->modules = a;
	m->modules[m->n_modules] = strdup(module);
	if (!m->modules[m->n_modules])
		return -ENOMEM;
	m->n_modules++;
	return 0;
}

int manifest_add_vm(Manifest *m, const char *vm_id, const char *session, uid_t uid,
		    const uint64_t *tokens, size_t n_tokens)
{
	ManifestVm *a, *vm;

	if (!vm_id_valid(vm_id) || !luo_session_name_valid(session) || n_tokens > LU_VMM_FDS_MAX)
		return -EINVAL;
	if (m->n_vms >= MANIFEST_VMS_MAX)
		return -E2BIG;
	for (size_t i = 0; i < m->n_vms; i++)
		if (strcmp(m->vms[i].vm_id, vm_id) == 0 || strcmp(m->vms[i].session, session) == 0)
			return -EEXIST;

	a = reallocarray(m->vms, m->n_vms + 1, sizeof(ManifestVm));
	if (!a)
		return -ENOMEM;
	m->vms = a;
	vm = &m->vms[m->n_vms];
	*vm = (ManifestVm){ .uid = uid };
	strcpy(vm->vm_id, vm_id);
	strcpy(vm->session, session);
	if (n_tokens > 0) {
		vm->tokens = memdup(tokens, n_tokens * sizeof(uint64_t));
		if (!vm->tokens)
			return -ENOMEM;
	}
	vm->n_tokens = n_tokens;
	m->n_vms++;
	return 0;
}

int manifest_add_device(Manifest *m, size_t vm, const char *slot)
{
	ManifestVm *v;
	PciSlot *a;

	if (vm >= m->n_vms || !pci_slot_valid(slot))
		return -EINVAL;
	v = &m->vms[vm];
	/* a device is one preserved file: the tokens bound the list */
	if (v->n_devices >= v->n_tokens || m->n_devices >= MANIFEST_DEVICES_MAX)
		return -E2BIG;
	for (size_t k = 0; k < v->n_devices; k++)
		if (strcmp(v->devices[k], slot) == 0)
			return -EEXIST;
	a = reallocarray(v->devices, v->n_devices + 1, sizeof(PciSlot));
	if (!a)
		return -ENOMEM;
	v->devices = a;
	strcpy(v->devices[v->n_devices++], slot);
	m->n_devices++;
	return 0;
}

static json_object *json_string_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

int manifest_to_json(const Manifest *m, char **ret, size_t *ret_len)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *kernel, *modules, *timeline, *vms;
	const char *s;
	size_t len;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "format", json_object_new_string(MANIFEST_FORMAT));
	json_object_object_add(o, "version", json_object_new_int(MANIFEST_VERSION));
	json_object_object_add(o, "update_id", json_object_new_string(m->update_id));

	kernel = json_object_new_object();
	json_object_object_add(kernel, "image", json_string_or_null(m->kernel_image));
	json_object_object_add(kernel, "initrd", json_string_or_null(m->initrd));
	json_object_object_add(kernel, "cmdline", json_string_or_null(m->cmdline));
	json_object_object_add(o, "kernel", kernel);

	modules = json_object_new_array();
	for (size_t i = 0; i < m->n_modules; i++)
		json_object_array_add(modules, json_object_new_string(m->modules[i]));
	json_object_object_add(o, "modules", modules);

	timeline = json_object_new_object();
	json_object_object_add(timeline, "prepare_start_us", json_object_new_uint64(m->prepare_start_us));
	json_object_object_add(timeline, "prepare_end_us", json_object_new_uint64(m->prepare_end_us));
	json_object_object_add(timeline, "commit_us", json_object_new_uint64(m->commit_us));
	json_object_object_add(o, "timeline", timeline);

	vms = json_object_new_array_ext((int)m->n_vms);
	for (size_t i = 0; i < m->n_vms; i++) {
		const ManifestVm *vm = &m->vms[i];
		json_object *v = json_object_new_object(), *tokens = json_object_new_array();
		json_object *devices = json_object_new_array();

		json_object_object_add(v, "vm_id", json_object_new_string(vm->vm_id));
		json_object_object_add(v, "session", json_object_new_string(vm->session));
		json_object_object_add(v, "uid", json_object_new_int64(vm->uid));
		for (size_t k = 0; k < vm->n_tokens; k++)
			json_object_array_add(tokens, json_object_new_uint64(vm->tokens[k]));
		json_object_object_add(v, "tokens", tokens);
		for (size_t k = 0; k < vm->n_devices; k++)
			json_object_array_add(devices, json_object_new_string(vm->devices[k]));
		json_object_object_add(v, "devices", devices);
		json_object_array_add(vms, v);
	}
	json_object_object_add(o, "vms", vms);

	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	if (!s)
		return -ENOMEM;
	*ret = strndup(s, len);
	if (!*ret)
		return -ENOMEM;
	*ret_len = len;
	return 0;
}

/* --- reading: trust nothing --- */

static json_object *member(json_object *o, const char *key, json_type type)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	/* json-c keeps an escaped NUL ("\u0000") inside a string; the C string would end there */
	if (type == json_type_string &&
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return NULL;
	return v;
}

static int get_u64(json_object *o, const char *key, uint64_t *ret)
{
	json_object *v = member(o, key, json_type_int);

	if (!v)
		return -EBADMSG;
	/* json-c keeps negative and huge values apart; refuse negatives */
	if (json_object_get_int64(v) < 0 && json_object_get_uint64(v) == 0)
		return -EBADMSG;
	*ret = json_object_get_uint64(v);
	return 0;
}

static int get_string_dup(json_object *o, const char *key, bool nullable, size_t max, char **ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return -EBADMSG;
	if (!v) {
		*ret = NULL;
		return nullable ? 0 : -EBADMSG;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) > max ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return -EBADMSG;
	*ret = strdup(json_object_get_string(v));
	return *ret ? 0 : -ENOMEM;
}

/* Returns the version, from min to max, or a negative errno. */
static int check_format(json_object *o, const char *format, int min, int max)
{
	json_object *f = member(o, "format", json_type_string), *v = member(o, "version", json_type_int);
	int64_t version;

	if (!f || strcmp(json_object_get_string(f), format) != 0 || !v)
		return -EBADMSG;
	version = json_object_get_int64(v);
	if (version < min || version > max)
		return -EPROTONOSUPPORT;
	return (int)version;
}

static json_object *parse(const char *buf, size_t len)
{
	json_tokener *tok;
	json_object *o;

	if (len == 0 || len > MANIFEST_SIZE_MAX || memchr(buf, '\0', len))
		return NULL;
	tok = json_tokener_new_ex(8);
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	/* the whole buffer must be exactly one object */
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static int parse_update_id(json_object *o, char ret[static LU_UPDATE_ID_MAX + 1])
{
	json_object *v = member(o, "update_id", json_type_string);

	if (!v || !update_id_valid(json_object_get_string(v)))
		return -EBADMSG;
	strcpy(ret, json_object_get_string(v));
	return 0;
}

/* Forget the device lists of VMs [from, to): the restore needs none of them. */
static void drop_devices(Manifest *m, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		m->n_devices -= m->vms[i].n_devices;
		free(m->vms[i].devices);
		m->vms[i].devices = NULL;
		m->vms[i].n_devices = 0;
	}
	m->devices_dropped = true;
}

/*
 * The devices of the VM just added; none when the member is absent (an
 * older writer). A malformed list is dropped rather than refused: the
 * kernel carries the devices either way, and refusing the manifest would
 * leave every VM's memory unrestored.
 */
static int parse_devices(Manifest *m, json_object *v)
{
	json_object *devices;

	if (!json_object_object_get_ex(v, "devices", NULL))
		return 0;
	devices = member(v, "devices", json_type_array);
	if (!devices || json_object_array_length(devices) > LU_VMM_FDS_MAX) {
		drop_devices(m, m->n_vms - 1, m->n_vms);
		return 0;
	}
	for (size_t k = 0; k < json_object_array_length(devices); k++) {
		json_object *e = json_object_array_get_idx(devices, k);
		int r = -EBADMSG;

		if (json_object_is_type(e, json_type_string) &&
		    strlen(json_object_get_string(e)) == (size_t)json_object_get_string_len(e))
			r = manifest_add_device(m, m->n_vms - 1, json_object_get_string(e));
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			drop_devices(m, m->n_vms - 1, m->n_vms);
			return 0;
		}
	}
	return 0;
}

static int parse_vm(Manifest *m, json_object *v)
{
	json_object *id = member(v, "vm_id", json_type_string), *session = member(v, "session", json_type_string);
	json_object *tokens = member(v, "tokens", json_type_array);
	_cleanup_free_ uint64_t *t = NULL;
	uint64_t uid;
	size_t n;

	if (!id || !session || !tokens || get_u64(v, "uid", &uid) < 0 || uid > UINT32_MAX - 1)
		return -EBADMSG;
	n = json_object_array_length(tokens);
	if (n > LU_VMM_FDS_MAX)
		return -EBADMSG;
	t = calloc(n ?: 1, sizeof(uint64_t));
	if (!t)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		json_object *e = json_object_array_get_idx(tokens, k);

		if (!json_object_is_type(e, json_type_int) ||
		    (json_object_get_int64(e) < 0 && json_object_get_uint64(e) == 0))
			return -EBADMSG;
		t[k] = json_object_get_uint64(e);
		for (size_t j = 0; j < k; j++)
			if (t[j] == t[k])
				return -EBADMSG;
	}
	if (manifest_add_vm(m, json_object_get_string(id), json_object_get_string(session),
			    (uid_t)uid, t, n) < 0)
		return -EBADMSG;
	return parse_devices(m, v);
}

static int compare_slots(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* A device is preserved in one session only: a slot twice over all VMs drops every list. */
static int check_devices_unique(Manifest *m)
{
	_cleanup_free_ PciSlot *all = NULL;
	size_t n = 0;

	if (m->n_devices == 0)
		return 0;
	all = calloc(m->n_devices, sizeof(PciSlot));
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_vms; i++)
		for (size_t k = 0; k < m->vms[i].n_devices; k++)
			memcpy(all[n++], m->vms[i].devices[k], sizeof(PciSlot));
	qsort(all, n, sizeof(PciSlot), compare_slots);
	for (size_t i = 1; i < n; i++)
		if (strcmp(all[i - 1], all[i]) == 0) {
			drop_devices(m, 0, m->n_vms);
			break;
		}
	return 0;
}

int manifest_from_json(const char *buf, size_t len, Manifest **ret)
{
	_cleanup_json_ json_object *o = parse(buf, len);
	_cleanup_(manifest_freep) Manifest *m = NULL;
	json_object *kernel, *modules, *timeline, *vms;
	int r;

	if (!o)
		return -EBADMSG;
	r = check_format(o, MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_VERSION);
	if (r < 0)
		return r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (parse_update_id(o, m->update_id) < 0)
		return -EBADMSG;

	kernel = member(o, "kernel", json_type_object);
	if (!kernel || get_string_dup(kernel, "image", false, 4096, &m->kernel_image) < 0 ||
	    get_string_dup(kernel, "initrd", true, 4096, &m->initrd) < 0 ||
	    get_string_dup(kernel, "cmdline", false, 4096, &m->cmdline) < 0)
		return -EBADMSG;

	modules = member(o, "modules", json_type_array);
	if (!modules || json_object_array_length(modules) > MANIFEST_MODULES_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(modules); i++) {
		json_object *e = json_object_array_get_idx(modules, i);

		if (!json_object_is_type(e, json_type_string) ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e) ||
		    manifest_add_module(m, json_object_get_string(e)) < 0)
			return -EBADMSG;
	}

	timeline = member(o, "timeline", json_type_object);
	if (!timeline || get_u64(timeline, "prepare_start_us", &m->prepare_start_us) < 0 ||
	    get_u64(timeline, "prepare_end_us", &m->prepare_end_us) < 0 ||
	    get_u64(timeline, "commit_us", &m->commit_us) < 0)
		return -EBADMSG;

	vms = member(o, "vms", json_type_array);
	if (!vms || json_object_array_length(vms) > MANIFEST_VMS_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i);

		if (!json_object_is_type(v, json_type_object))
			return -EBADMSG;
		r = parse_vm(m, v);
		if (r < 0)
			return r;
	}
	r = check_devices_unique(m);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(m);
	return 0;
}

size_t commit_record_capacity(size_t n_vms)
{
	/* fixed part plus one 20-digit number and a comma per VM, page aligned */
	size_t need = 512 + LU_UPDATE_ID_MAX + n_vms * 22;

	return (need + 4095) & ~(size_t)4095;
}

int commit_record_to_json(const CommitRecord *r, char *buf, size_t size)
{
	size_t off;
	int n;

	/* Hand-rolled on purpose: this runs inside the blackout, and it is only numbers. */
	n = snprintf(buf, size,
		     "{\"format\":\"" COMMIT_RECORD_FORMAT "\",\"version\":%d,\"update_id\":\"%s\","
		     "\"freeze_requested_us\":%llu,\"frozen_us\":%llu,\"reboot_us\":%llu,"
		     "\"freeze_requested_tsc\":%llu,\"frozen_tsc\":%llu,\"reboot_tsc\":%llu,"
		     "\"vm_frozen_us\":[",
		     COMMIT_RECORD_VERSION, r->update_id, (unsigned long long)r->freeze_requested_us,
		     (unsigned long long)r->frozen_us, (unsigned long long)r->reboot_us,
		     (unsigned long long)r->freeze_requested_tsc, (unsigned long long)r->frozen_tsc,
		     (unsigned long long)r->reboot_tsc);
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	off = (size_t)n;
	for (size_t i = 0; i < r->n_vms; i++) {
		n = snprintf(buf + off, size - off, "%s%llu", i ? "," : "",
			     (unsigned long long)r->vm_frozen_us[i]);
		if (n < 0 || (size_t)n >= size - off)
			return -ENOBUFS;
		off += (size_t)n;
	}
	n = snprintf(buf + off, size - off, "]}");
	if (n < 0 || (size_t)n >= size - off)
		return -ENOBUFS;
	off += (size_t)n;
	return (int)off;
}

int commit_record_from_json(const char *buf, size_t len, const Manifest *m, CommitRecord **ret)
{
	_cleanup_json_ json_object *o = parse(buf, len);
	_cleanup_(commit_record_freep) CommitRecord *r = NULL;
	json_object *frozen;
	int version;

	if (!o)
		return -EBADMSG;
	version = check_format(o, COMMIT_RECORD_FORMAT, 1, COMMIT_RECORD_VERSION);
	if (version < 0)
		return version;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (parse_update_id(o, r->update_id) < 0 || strcmp(r->update_id, m->update_id) != 0)
		return -EBADMSG;
	if (get_u64(o, "freeze_requested_us", &r->freeze_requested_us) < 0 ||
	    get_u64(o, "frozen_us", &r->frozen_us) < 0 || get_u64(o, "reboot_us", &r->reboot_us) < 0)
		return -EBADMSG;
	/* version 1 had no TSC stamps: they stay 0, unknown */
	if (version >= 2 && (get_u64(o, "freeze_requested_tsc", &r->freeze_requested_tsc) < 0 ||
			     get_u64(o, "frozen_tsc", &r->frozen_tsc) < 0 ||
			     get_u64(o, "reboot_tsc", &r->reboot_tsc) < 0))
		return -EBADMSG;

	frozen = member(o, "vm_frozen_us", json_type_array);
	if (!frozen || json_object_array_length(frozen) != m->n_vms)
		return -EBADMSG;
	r->vm_frozen_us = calloc(m->n_vms ?: 1, sizeof(usec_t));
	if (!r->vm_frozen_us)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_vms; i++) {
		json_object *e = json_object_array_get_idx(frozen, i);

		if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) < 0)
			return -EBADMSG;
		r->vm_frozen_us[i] = json_object_get_uint64(e);
	}
	r->n_vms = m->n_vms;

	*ret = TAKE_PTR(r);
	return 0;
}

int manifest_memfd_new(const char *name, const char *buf, size_t len, size_t capacity)
{
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	if (len > capacity)
		return -ENOBUFS;
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	/* LUO freezes a memfd's size when it is preserved: size it now, for good */
	if (ftruncate(fd, (off_t)capacity) < 0)
		return negative_errno();
	while (off < len) {
		ssize_t n = pwrite(fd, buf + off, len - off, (off_t)off);

		if (n < 0)
			return negative_errno();
		off += (size_t)n;
	}
	return TAKE_FD(fd);
}

int manifest_memfd_read(int fd, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t size, off = 0;
	char *nul;

	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (st.st_size <= 0 || (size_t)st.st_size > max)
		return -EBADMSG;
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (!buf)
		return -ENOMEM;
	while (off < size) {
		ssize_t n = pread(fd, buf + off, size - off, (off_t)off);

		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	nul = memchr(buf, '\0', off + 1);
	*ret_len = (size_t)(nul - buf);
	*ret = TAKE_PTR(buf);
	return 0;
}
