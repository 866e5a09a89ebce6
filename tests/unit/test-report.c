/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

/* At 1 GHz a tick is a ns: the figures below read as µs with three decimals. */
#define HZ 1000000000ULL
#define F 5000000000000ULL

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v;
}

static int64_t get_int(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static void assert_json_null(json_object *o, const char *key)
{
	assert_null(get(o, key));
}

/* A restore that went through: two VMs resumed, one released. */
static Report *sample(void)
{
	Report *r = report_new("20261121T010203Z-deadbeef");
	ReportVm *a, *b, *c;

	assert_non_null(r);
	r->outcome = REPORT_FAILED;
	r->tsc = (ReportTsc){
		.freeze_requested = F,
		.frozen = F + 1500400,        /* 1500.400 µs */
		.reboot = F + 2000000,
		.daemon_start = F + 50000600, /* 50000.600 */
		.restore_ready = F + 60000000,
		.hz = HZ,
	};
	a = report_vm(r, "vm-a");
	assert_non_null(a);
	*a = (ReportVm){ .vm_id = "vm-a", .outcome = REPORT_VM_RESUMED, .restore_tsc = F + 61000000,
			 .resumed_tsc = F + 70000499, .freeze_requested_us = 10, .resumed_us = 20 };
	b = report_vm(r, "vm-b");
	assert_non_null(b);
	*b = (ReportVm){ .vm_id = "vm-b", .outcome = REPORT_VM_RESUMED, .restore_tsc = F + 62000000,
			 .resumed_tsc = F + 80000501, .freeze_requested_us = 10, .resumed_us = 30 };
	c = report_vm(r, "vm-c");
	assert_non_null(c);
	*c = (ReportVm){ .vm_id = "vm-c", .outcome = REPORT_VM_RELEASED };
	return r;
}

static json_object *vm_entry(json_object *o, size_t i)
{
	json_object *vmms = get(o, "vmms");

	assert_true(json_object_is_type(vmms, json_type_array));
	return json_object_array_get_idx(vmms, i);
}

static void test_timeline(void **state)
{
	_cleanup_(report_freep) Report *r = sample();
	json_object *o = report_to_json(r), *tl = get(o, "timeline");
	int64_t sum;

	assert_non_null(tl);
	assert_string_equal(json_object_get_string(get(tl, "clock")), "tsc");
	assert_int_equal(get_int(tl, "tsc_hz"), HZ);
	assert_int_equal(get_int(tl, "freeze_barrier_us"), 1500);
	assert_int_equal(get_int(tl, "kexec_boot_us"), 50001 - 1500);
	assert_int_equal(get_int(tl, "restore_us"), 60000 - 50001);
	assert_int_equal(get_int(tl, "handback_us"), 80001 - 60000);
	assert_int_equal(get_int(tl, "blackout_us"), 80001);
	/* the phases add up, whatever the rounding of each */
	sum = get_int(tl, "freeze_barrier_us") + get_int(tl, "kexec_boot_us") +
	      get_int(tl, "restore_us") + get_int(tl, "handback_us");
	assert_int_equal(sum, get_int(tl, "blackout_us"));
	/* the top-level figure is the TSC's, not CLOCK_REALTIME's 20 µs */
	assert_int_equal(get_int(o, "blackout_us"), 80001);

	assert_int_equal(get_int(vm_entry(o, 0), "blackout_us"), 70000);
	assert_int_equal(get_int(vm_entry(o, 0), "handback_us"), 70000 - 61000);
	assert_int_equal(get_int(vm_entry(o, 1), "blackout_us"), 80001);
	assert_json_null(vm_entry(o, 2), "blackout_us");
	assert_json_null(vm_entry(o, 2), "handback_us");
	json_object_put(o);
}

/* The rate is the converting process's: another rate, other figures, same ticks. */
static void test_rate(void **state)
{
	_cleanup_(report_freep) Report *r = sample();
	json_object *o, *tl;

	r->tsc.hz = 2 * HZ;
	o = report_to_json(r);
	tl = get(o, "timeline");
	assert_int_equal(get_int(tl, "tsc_hz"), 2 * HZ);
	assert_int_equal(get_int(tl, "blackout_us"), 40000);
	json_object_put(o);
}

static void test_in_progress(void **state)
{
	_cleanup_(report_freep) Report *r = sample();
	json_object *o, *tl;

	r->outcome = REPORT_IN_PROGRESS;
	o = report_to_json(r);
	tl = get(o, "timeline");
	assert_int_equal(get_int(tl, "restore_us"), 60000 - 50001);
	assert_json_null(tl, "handback_us");
	assert_json_null(tl, "blackout_us");
	assert_json_null(o, "blackout_us");
	/* a VM that resumed has its own figure already */
	assert_int_equal(get_int(vm_entry(o, 0), "blackout_us"), 70000);
	json_object_put(o);
}

/* A daemon restarted during the restore does not know its predecessor's start. */
static void test_picked_up(void **state)
{
	_cleanup_(report_freep) Report *r = sample();
	json_object *o, *tl;

	r->tsc.daemon_start = r->tsc.restore_ready = 0;
	o = report_to_json(r);
	tl = get(o, "timeline");
	assert_int_equal(get_int(tl, "freeze_barrier_us"), 1500);
	assert_json_null(tl, "kexec_boot_us");
	assert_json_null(tl, "restore_us");
	assert_json_null(tl, "handback_us");
	assert_int_equal(get_int(tl, "blackout_us"), 80001);
	json_object_put(o);
}

static void expect_no_timeline(Report *r, int64_t realtime_blackout)
{
	json_object *o = report_to_json(r);

	assert_json_null(o, "timeline");
	if (realtime_blackout)
		assert_int_equal(get_int(o, "blackout_us"), realtime_blackout);
	else
		assert_json_null(o, "blackout_us");
	assert_json_null(vm_entry(o, 0), "blackout_us");
	json_object_put(o);
}

static void test_no_timeline(void **state)
{
	_cleanup_(report_freep) Report *r = sample();
	ReportTsc good = r->tsc;

	/* no TSC stamps in the commit record (none, or version 1): CLOCK_REALTIME's figure */
	r->tsc.freeze_requested = 0;
	assert_false(report_has_tsc(r));
	expect_no_timeline(r, 20);

	/* no rate here */
	r->tsc = good;
	assert_true(report_has_tsc(r));
	r->tsc.hz = 0;
	expect_no_timeline(r, 20);

	/* the TSC went backwards across the kexec: no figure rather than a wrong one */
	r->tsc = good;
	r->tsc.daemon_start = F - 1;
	expect_no_timeline(r, 20);
	r->tsc = good;
	r->vms[1].restore_tsc = good.restore_ready - 1;
	expect_no_timeline(r, 20);
	r->vms[1].restore_tsc = F + 62000000;
	r->vms[0].resumed_tsc = r->vms[0].restore_tsc - 1;
	expect_no_timeline(r, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeline),  cmocka_unit_test(test_rate),
		cmocka_unit_test(test_in_progress), cmocka_unit_test(test_picked_up),
		cmocka_unit_test(test_no_timeline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
