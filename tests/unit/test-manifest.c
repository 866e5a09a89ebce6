/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"
#include "macro.h"
#include "manifest.h"

static Manifest *sample(void)
{
	Manifest *m = calloc(1, sizeof(*m));
	uint64_t t1[] = { 1, 0x10000 }, t2[] = { UINT64_MAX };

	assert_non_null(m);
	strcpy(m->update_id, "20261121T010203Z-deadbeef");
	m->kernel_image = strdup("/boot/vmlinuz-next");
	m->cmdline = strdup("console=ttyS0 \"quoted word\" liveupdate=on kho=on");
	m->prepare_start_us = 1000;
	m->prepare_end_us = 2000;
	m->commit_us = 3000;
	assert_int_equal(manifest_add_module(m, "vfio-pci"), 0);
	assert_int_equal(manifest_add_module(m, "vfio-pci"), 0); /* once */
	assert_int_equal(manifest_add_vm(m, "vm-1", "lu.deadbeef.vm-1", 107, t1, 2), 0);
	assert_int_equal(manifest_add_vm(m, "vm-2", "lu.deadbeef.vm-2", 0, t2, 1), 0);
	return m;
}

static void test_roundtrip(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample(), *back = NULL;
	_cleanup_free_ char *json = NULL;
	size_t len;

	assert_int_equal(manifest_to_json(m, &json, &len), 0);
	assert_int_equal(manifest_from_json(json, len, &back), 0);
	assert_string_equal(back->update_id, m->update_id);
	assert_string_equal(back->kernel_image, m->kernel_image);
	assert_null(back->initrd);
	assert_string_equal(back->cmdline, m->cmdline);
	assert_int_equal(back->n_modules, 1);
	assert_string_equal(back->modules[0], "vfio-pci");
	assert_int_equal(back->prepare_start_us, 1000);
	assert_int_equal(back->commit_us, 3000);
	assert_int_equal(back->n_vms, 2);
	assert_string_equal(back->vms[0].vm_id, "vm-1");
	assert_string_equal(back->vms[0].session, "lu.deadbeef.vm-1");
	assert_int_equal(back->vms[0].uid, 107);
	assert_int_equal(back->vms[0].n_tokens, 2);
	assert_true(back->vms[0].tokens[1] == 0x10000);
	/* a u64 token survives JSON exactly */
	assert_true(back->vms[1].tokens[0] == UINT64_MAX);
}

static void test_add_vm_rules(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample();

	assert_int_equal(manifest_add_vm(m, "vm-1", "lu.x.vm-1b", 0, NULL, 0), -EEXIST);
	assert_int_equal(manifest_add_vm(m, "vm-3", "lu.deadbeef.vm-1", 0, NULL, 0), -EEXIST);
	assert_int_equal(manifest_add_vm(m, "bad id", "s", 0, NULL, 0), -EINVAL);
	assert_int_equal(manifest_add_vm(m, "vm-4", "", 0, NULL, 0), -EINVAL);
	assert_int_equal(manifest_add_module(m, "../evil"), -EINVAL);
	assert_int_equal(manifest_add_module(m, ""), -EINVAL);
}

/* Replace the first occurrence of from with to in json and expect the parse to fail with err. */
static void expect_refused(const char *json, const char *from, const char *to, int err)
{
	_cleanup_(manifest_freep) Manifest *back = NULL;
	char buf[8192];
	const char *p = strstr(json, from);

	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - json), json, to, p + strlen(from));
	assert_int_equal(manifest_from_json(buf, strlen(buf), &back), err);
	assert_null(back);
}

static void test_validation(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample(), *back = NULL;
	_cleanup_free_ char *json = NULL;
	size_t len;

	assert_int_equal(manifest_to_json(m, &json, &len), 0);

	expect_refused(json, "\"version\":1", "\"version\":2", -EPROTONOSUPPORT);
	expect_refused(json, "\"version\":1", "\"version\":\"1\"", -EBADMSG);
	expect_refused(json, "liveupdated-manifest", "something-else", -EBADMSG);
	expect_refused(json, "\"vm_id\":\"vm-1\"", "\"vm_id\":\"../vm\"", -EBADMSG);
	expect_refused(json, "\"vm_id\":\"vm-2\"", "\"vm_id\":\"vm-1\"", -EBADMSG); /* duplicate */
	expect_refused(json, "\"tokens\":[1,", "\"tokens\":[-1,", -EBADMSG);
	expect_refused(json, "\"tokens\":[1,65536]", "\"tokens\":[1,1]", -EBADMSG); /* duplicate token */
	expect_refused(json, "\"uid\":107", "\"uid\":-5", -EBADMSG);
	expect_refused(json, "\"modules\":[\"vfio-pci\"]", "\"modules\":[\"../x\"]", -EBADMSG);
	expect_refused(json, "\"update_id\":\"", "\"update_id\":\"bad id ", -EBADMSG);
	expect_refused(json, "\"kernel\":{", "\"kernel\":[{", -EBADMSG);
	/* an escaped NUL: the C string would end before the JSON string does */
	expect_refused(json, "\"vm_id\":\"vm-1\"", "\"vm_id\":\"vm-1\\u0000x\"", -EBADMSG);
	expect_refused(json, "\"session\":\"lu.deadbeef.vm-1\"",
		       "\"session\":\"lu.deadbeef.vm-1\\u0000x\"", -EBADMSG);
	expect_refused(json, "\"modules\":[\"vfio-pci\"]", "\"modules\":[\"vfio-pci\\u0000\"]",
		       -EBADMSG);

	/* trailing garbage, truncation, NUL inside, empty */
	assert_int_equal(manifest_from_json(json, len - 1, &back), -EBADMSG);
	{
		char buf[8192];

		snprintf(buf, sizeof(buf), "%s{}", json);
		assert_int_equal(manifest_from_json(buf, strlen(buf), &back), -EBADMSG);
		memcpy(buf, json, len);
		buf[10] = '\0';
		assert_int_equal(manifest_from_json(buf, len, &back), -EBADMSG);
	}
	assert_int_equal(manifest_from_json("", 0, &back), -EBADMSG);
	assert_int_equal(manifest_from_json("[]", 2, &back), -EBADMSG);
}

/*
 * Replace from with to in json: the manifest still reads, every VM with
 * its tokens, with n_kept devices left and devices_dropped set.
 */
static void expect_devices_dropped(const char *json, const char *from, const char *to, size_t n_kept)
{
	_cleanup_(manifest_freep) Manifest *back = NULL;
	char buf[8192];
	const char *p = strstr(json, from);

	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - json), json, to, p + strlen(from));
	assert_int_equal(manifest_from_json(buf, strlen(buf), &back), 0);
	assert_true(back->devices_dropped);
	assert_int_equal(back->n_vms, 2);
	assert_int_equal(back->vms[1].n_tokens, 1);
	assert_int_equal(back->vms[1].n_devices, 0);
	assert_int_equal(back->n_devices, n_kept);
	assert_int_equal(back->vms[0].n_devices, n_kept);
}

static void test_devices(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample(), *back = NULL;
	_cleanup_free_ char *json = NULL;
	size_t len;

	/* vm-1 has two tokens: two devices at most */
	assert_int_equal(manifest_add_device(m, 0, "0000:00:07.0"), 0);
	assert_int_equal(manifest_add_device(m, 0, "0000:00:07.0"), -EEXIST);
	assert_int_equal(manifest_add_device(m, 0, "../07.0"), -EINVAL);
	assert_int_equal(manifest_add_device(m, 2, "0000:00:08.0"), -EINVAL);
	assert_int_equal(manifest_add_device(m, 0, "10000:3a:00.1"), 0);
	assert_int_equal(manifest_add_device(m, 0, "0000:00:09.0"), -E2BIG);
	assert_int_equal(manifest_add_device(m, 1, "0000:00:08.0"), 0);
	assert_int_equal(m->n_devices, 3);

	assert_int_equal(manifest_to_json(m, &json, &len), 0);
	assert_non_null(strstr(json, "\"devices\":[\"0000:00:07.0\",\"10000:3a:00.1\"]"));
	assert_int_equal(manifest_from_json(json, len, &back), 0);
	assert_int_equal(back->n_devices, 3);
	assert_false(back->devices_dropped);
	assert_int_equal(back->vms[0].n_devices, 2);
	assert_string_equal(back->vms[0].devices[0], "0000:00:07.0");
	assert_string_equal(back->vms[0].devices[1], "10000:3a:00.1");
	assert_int_equal(back->vms[1].n_devices, 1);
	assert_string_equal(back->vms[1].devices[0], "0000:00:08.0");
	back = manifest_free(back);

	/* a device in two sessions: every list is dropped, the VMs stay */
	expect_devices_dropped(json, "\"0000:00:08.0\"", "\"0000:00:07.0\"", 0);
	/* a bad slot, more devices than tokens, not a list, not a string: vm-2's only */
	expect_devices_dropped(json, "\"0000:00:08.0\"", "\"0000:00:08.0 \"", 2);
	expect_devices_dropped(json, "\"0000:00:08.0\"", "\"0000:00:08.0\",\"0000:00:09.0\"", 2);
	expect_devices_dropped(json, "\"devices\":[\"0000:00:08.0\"]", "\"devices\":\"0000:00:08.0\"",
			       2);
	expect_devices_dropped(json, "\"0000:00:08.0\"", "8", 2);
	expect_devices_dropped(json, "\"0000:00:08.0\"", "\"0000:00:08.0\\u0000\"", 2);
}

/* A manifest of a daemon that did not know devices yet reads as VMs without any. */
static void test_devices_absent(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample(), *back = NULL;
	_cleanup_free_ char *json = NULL;
	char old[8192];
	size_t len;

	assert_int_equal(manifest_to_json(m, &json, &len), 0);
	snprintf(old, sizeof(old), "%s", json);
	for (char *p; (p = strstr(old, ",\"devices\":[]"));)
		memmove(p, p + strlen(",\"devices\":[]"), strlen(p + strlen(",\"devices\":[]")) + 1);
	assert_null(strstr(old, "devices"));
	assert_int_equal(manifest_from_json(old, strlen(old), &back), 0);
	assert_int_equal(back->n_vms, 2);
	assert_int_equal(back->n_devices, 0);
	assert_int_equal(back->vms[0].n_devices, 0);
}

static void test_commit_record(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample();
	_cleanup_(commit_record_freep) CommitRecord *back = NULL;
	usec_t frozen[] = { 111, 222 };
	CommitRecord r = { .freeze_requested_us = 100, .frozen_us = 250, .reboot_us = 300,
			   .freeze_requested_tsc = 1000000, .frozen_tsc = 2000000,
			   .reboot_tsc = UINT64_MAX, .vm_frozen_us = frozen, .n_vms = 2 };
	size_t cap = commit_record_capacity(2);
	char buf[8192];
	int len;

	strcpy(r.update_id, m->update_id);
	assert_true(cap >= 4096 && cap % 4096 == 0);
	len = commit_record_to_json(&r, buf, cap);
	assert_true(len > 0);
	assert_int_equal(commit_record_from_json(buf, (size_t)len, m, &back), 0);
	assert_int_equal(back->frozen_us, 250);
	assert_int_equal(back->vm_frozen_us[1], 222);
	assert_int_equal(back->freeze_requested_tsc, 1000000);
	assert_int_equal(back->frozen_tsc, 2000000);
	/* a u64 stamp survives exactly */
	assert_true(back->reboot_tsc == UINT64_MAX);

	/* the capacity really holds a thousand VMs' worth of the largest numbers */
	{
		size_t n = 1000;
		_cleanup_free_ usec_t *big = calloc(n, sizeof(usec_t));
		_cleanup_free_ char *b = malloc(commit_record_capacity(n));
		CommitRecord rb = { .freeze_requested_us = UINT64_MAX, .frozen_us = UINT64_MAX,
				    .reboot_us = UINT64_MAX, .freeze_requested_tsc = UINT64_MAX,
				    .frozen_tsc = UINT64_MAX, .reboot_tsc = UINT64_MAX, .n_vms = n };

		for (size_t i = 0; i < n; i++)
			big[i] = UINT64_MAX;
		rb.vm_frozen_us = big;
		strcpy(rb.update_id, m->update_id);
		assert_true(commit_record_to_json(&rb, b, commit_record_capacity(n)) > 0);
		/* and a buffer too small is refused, not overrun */
		assert_int_equal(commit_record_to_json(&rb, b, 100), -ENOBUFS);
	}

	/* a record of another update, or with the wrong VM count, is refused */
	strcpy(r.update_id, "20261121T010203Z-00000000");
	len = commit_record_to_json(&r, buf, cap);
	commit_record_free(back);
	back = NULL;
	assert_int_equal(commit_record_from_json(buf, (size_t)len, m, &back), -EBADMSG);
	strcpy(r.update_id, m->update_id);
	r.n_vms = 1;
	len = commit_record_to_json(&r, buf, cap);
	assert_int_equal(commit_record_from_json(buf, (size_t)len, m, &back), -EBADMSG);
}

/* Replace from with to in a commit record and parse it. */
static int parse_record_edited(const char *json, const Manifest *m, const char *from, const char *to,
			       CommitRecord **ret)
{
	char buf[8192];
	const char *p = strstr(json, from);

	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - json), json, to, p + strlen(from));
	return commit_record_from_json(buf, strlen(buf), m, ret);
}

static void test_commit_record_versions(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample();
	_cleanup_(commit_record_freep) CommitRecord *back = NULL;
	usec_t frozen[] = { 111, 222 };
	CommitRecord r = { .freeze_requested_us = 100, .frozen_us = 250, .reboot_us = 300,
			   .freeze_requested_tsc = 5, .frozen_tsc = 6, .reboot_tsc = 7,
			   .vm_frozen_us = frozen, .n_vms = 2 };
	char buf[8192], v1[8192];
	int len;

	strcpy(r.update_id, m->update_id);
	len = commit_record_to_json(&r, buf, sizeof(buf));
	assert_true(len > 0);
	assert_non_null(strstr(buf, "\"version\":2,"));

	/* version 1, as an older daemon wrote it: no TSC stamps, which stay unknown */
	snprintf(v1, sizeof(v1), "%s", buf);
	{
		char *p = strstr(v1, ",\"freeze_requested_tsc\"");
		char *q = strstr(v1, ",\"vm_frozen_us\"");

		assert_non_null(p);
		assert_non_null(q);
		memmove(p, q, strlen(q) + 1);
	}
	assert_int_equal(parse_record_edited(v1, m, "\"version\":2", "\"version\":1", &back), 0);
	assert_int_equal(back->frozen_us, 250);
	assert_int_equal(back->freeze_requested_tsc, 0);
	assert_int_equal(back->frozen_tsc, 0);
	assert_int_equal(back->reboot_tsc, 0);
	back = commit_record_free(back);

	/* version 2 without its stamps is broken, not old */
	assert_int_equal(commit_record_from_json(v1, strlen(v1), m, &back), -EBADMSG);
	assert_int_equal(parse_record_edited(buf, m, ":6,", ":-6,", &back), -EBADMSG);
	assert_int_equal(parse_record_edited(buf, m, ":6,", ":\"6\",", &back), -EBADMSG);
	/* versions this daemon does not know */
	assert_int_equal(parse_record_edited(buf, m, "\"version\":2", "\"version\":3", &back),
			 -EPROTONOSUPPORT);
	assert_int_equal(parse_record_edited(buf, m, "\"version\":2", "\"version\":0", &back),
			 -EPROTONOSUPPORT);
	assert_null(back);
	assert_int_equal(commit_record_from_json(buf, (size_t)len, m, &back), 0);
	assert_int_equal(back->reboot_tsc, 7);
}

static void test_memfd(void **state)
{
	_cleanup_free_ char *out = NULL;
	_cleanup_close_ int fd = -1;
	size_t len;

	fd = manifest_memfd_new("test", "{\"a\":1}", 7, 4096);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 4096);
	assert_int_equal(manifest_memfd_read(fd, 1 << 20, &out, &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(out, "{\"a\":1}");
	assert_int_equal(manifest_memfd_new("test", "xx", 2, 1), -ENOBUFS);
	/* bigger than the reader allows */
	free(out);
	out = NULL;
	assert_int_equal(manifest_memfd_read(fd, 100, &out, &len), -EBADMSG);
}

static void test_handover(void **state)
{
	_cleanup_(manifest_freep) Manifest *m = sample();
	char dir[] = "/tmp/test-handover-XXXXXX", *id = NULL, **mods = NULL;
	size_t n;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(handover_read(dir, &id, &mods, &n), -ENOENT);
	assert_int_equal(handover_write(dir, m), 0);
	assert_int_equal(handover_read(dir, &id, &mods, &n), 0);
	assert_string_equal(id, m->update_id);
	assert_int_equal(n, 1);
	assert_string_equal(mods[0], "vfio-pci");
	assert_null(mods[1]);
	free(id);
	strv_free(mods);
	assert_int_equal(handover_remove(dir), 0);
	assert_int_equal(handover_remove(dir), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_add_vm_rules),
		cmocka_unit_test(test_validation),  cmocka_unit_test(test_devices),
		cmocka_unit_test(test_devices_absent), cmocka_unit_test(test_commit_record),
		cmocka_unit_test(test_commit_record_versions),
		cmocka_unit_test(test_memfd),       cmocka_unit_test(test_handover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
