/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "control-protocol.h"
#include "output.h"
#include "table.h"
#include "time-util.h"

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	json_object_object_get_ex(o, key, &v);
	return v;
}

/* A string member, or NULL when missing, null or of another type. */
static const char *str(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool int_member(json_object *o, const char *key, int64_t *ret)
{
	json_object *v = member(o, key);

	if (!json_object_is_type(v, json_type_int))
		return false;
	*ret = json_object_get_int64(v);
	return true;
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* "12.345 ms" */
static const char *format_ms(char buf[static 32], int64_t us)
{
	const char *sign = us < 0 ? "-" : "";
	uint64_t a = us < 0 ? -(uint64_t)us : (uint64_t)us;

	snprintf(buf, 32, "%s%" PRIu64 ".%03" PRIu64 " ms", sign, a / 1000, a % 1000);
	return buf;
}

/* Duration between two members of o, or "-" when either is missing. */
static const char *format_span(char buf[static 32], json_object *o, const char *from,
			       const char *to)
{
	int64_t a, b;

	if (!int_member(o, from, &a) || !int_member(o, to, &b))
		return "-";
	return format_ms(buf, b - a);
}

/* The VMM count of a result: a number, {"total":N,...} or an array. */
static int64_t vmm_count(json_object *v)
{
	int64_t n;

	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (json_object_is_type(v, json_type_array))
		return (int64_t)json_object_array_length(v);
	if (int_member(v, "total", &n))
		return n;
	return -1;
}

void output_json(json_object *o)
{
	_cleanup_free_ char *line = control_to_line(o, NULL);

	if (line)
		fputs(line, stdout);
	fflush(stdout);
}

void output_event(json_object *ev, bool timestamp)
{
	const char *name = str(ev, "event") ?: "?";
	char buf[32];
	int64_t t;

	if (timestamp) {
		if (int_member(ev, "time_us", &t) && t >= 0)
			printf("%s ", format_timestamp(buf, (usec_t)t));
		else
			printf("%-27s ", "");
	}

	if (strcmp(name, "state") == 0)
		printf("state: %s\n", or_dash(str(ev, "state")));
	else if (strcmp(name, "vmm") == 0)
		printf("  %s: %s\n", or_dash(str(ev, "vm_id")), or_dash(str(ev, "state")));
	else if (strcmp(name, "outcome") == 0) {
		json_object *err = member(ev, "error");

		printf("outcome: %s", or_dash(str(ev, "outcome")));
		if (str(err, "code"))
			printf(" (%s: %s)", str(err, "code"), or_dash(str(err, "message")));
		printf("\n");
	} else
		printf("%s: %s\n", name,
		       json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
}

/* "3 (2 prepared, 1 registered)" from {"total":3,"prepared":2,"registered":1} */
static void print_vmm_counts(json_object *vmms)
{
	const char *sep = " (";
	int64_t total = vmm_count(vmms);

	if (total < 0) {
		printf("-\n");
		return;
	}
	printf("%" PRId64, total);
	if (json_object_is_type(vmms, json_type_object)) {
		json_object_object_foreach(vmms, key, v)
		{
			if (strcmp(key, "total") == 0 || !json_object_is_type(v, json_type_int) ||
			    json_object_get_int64(v) == 0)
				continue;
			printf("%s%" PRId64 " %s", sep, json_object_get_int64(v), key);
			sep = ", ";
		}
		if (strcmp(sep, ", ") == 0)
			printf(")");
	}
	printf("\n");
}

static void print_kernel(json_object *kernel, const char *indent)
{
	printf("%sKernel:       %s\n", indent, or_dash(str(kernel, "image")));
	if (str(kernel, "initrd"))
		printf("%sInitrd:       %s\n", indent, str(kernel, "initrd"));
	if (str(kernel, "cmdline"))
		printf("%sCommand line: %s\n", indent, str(kernel, "cmdline"));
}

/* How far a device's hand-over has come (man/liveupdated-api.md), in words. */
static void print_handover(json_object *d)
{
	const char *h = str(d, "handover"), *vm = or_dash(str(d, "vm_id"));

	if (!h || strcmp(h, "none") == 0)
		return;
	if (strcmp(h, "preserved") == 0)
		printf(", preserved by %s", vm);
	else if (strcmp(h, "restored-domain") == 0)
		printf(", handed over to %s, on the old page tables until its session is finished", vm);
	else if (strcmp(h, "hot-swapped") == 0)
		printf(", handed over to %s, hot-swapped to its new domain", vm);
	else
		printf(", %s (%s)", h, vm);
	if (str(d, "finish_error"))
		printf("; FINISH refused (%s)", str(d, "finish_error"));
}

/* The passed-through devices, one line each: preservable or why not, and the hand-over. */
static void print_devices(json_object *devices)
{
	bool is_array = json_object_is_type(devices, json_type_array);
	size_t n = is_array ? json_object_array_length(devices) : 0;

	if (n == 0)
		return;
	printf("Devices:      %zu bound to vfio-pci\n", n);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(devices, i);
		json_object *p = member(d, "preservable");
		const char *h = str(d, "handover");
		int64_t group;

		printf("  %s [%s] ", or_dash(str(d, "slot")), or_dash(str(d, "id")));
		if (int_member(d, "iommu_group", &group) && group >= 0)
			printf("IOMMU group %" PRId64 ": ", group);
		else if (str(d, "driver"))
			printf("no IOMMU group: ");
		else
			printf("not listed by libpci: ");
		if (json_object_is_type(p, json_type_boolean) && json_object_get_boolean(p))
			printf("preservable%s", h && strcmp(h, "none") == 0 ? ", not preserved" : "");
		else
			printf("not preservable (%s)", or_dash(str(d, "reason")));
		print_handover(d);
		printf("\n");
	}
}

void output_status(json_object *r)
{
	json_object *report, *held;
	const char *id;

	printf("State:        %s\n", or_dash(str(r, "state")));
	printf("Update:       %s\n", or_dash(str(r, "update_id")));
	print_kernel(member(r, "kernel"), "");
	printf("VMMs:         ");
	print_vmm_counts(member(r, "vmms"));
	print_devices(member(r, "devices"));
	printf("Last outcome: %s\n", or_dash(str(r, "last_outcome")));
	report = member(r, "report");
	id = str(report, "update_id");
	if (id) {
		int64_t blackout;
		char b[32];

		printf("Report:       %s, %s", id, or_dash(str(report, "outcome")));
		if (int_member(report, "blackout_us", &blackout) && blackout >= 0) {
			snprintf(b, sizeof(b), "%.3f ms", (double)blackout / 1000.0);
			printf(", blackout %s", b);
		}
		printf(" (liveupdatectl report)\n");
	}
	held = member(r, "held_sessions");
	if (json_object_is_type(held, json_type_array) && json_object_array_length(held) > 0)
		printf("Held:         %zu session(s) of an interrupted update (abort releases them)\n",
		       json_object_array_length(held));
	if (str(r, "version"))
		printf("Version:      %s\n", str(r, "version"));
}

/* "0000:00:07.0,0000:00:08.0", and a refused FINISH: the list's DEVICES cell. */
static int add_devices_cell(Table *t, json_object *devices, const char *finish_error)
{
	size_t n = json_object_is_type(devices, json_type_array) ? json_object_array_length(devices) : 0;
	char cell[256] = "";
	size_t used = 0;

	for (size_t i = 0; i < n && used < sizeof(cell); i++) {
		json_object *e = json_object_array_get_idx(devices, i);
		int w;

		if (!json_object_is_type(e, json_type_string))
			continue;
		w = snprintf(cell + used, sizeof(cell) - used, "%s%s", used ? "," : "",
			     json_object_get_string(e));
		used += w > 0 ? (size_t)w : 0;
	}
	if (finish_error && used < sizeof(cell))
		snprintf(cell + used, sizeof(cell) - used, " (FINISH refused: %s)", finish_error);
	return table_add(t, cell[0] ? cell : NULL);
}

void output_list(json_object *r)
{
	json_object *vmms = member(r, "vmms");
	Table t = TABLE_NULL(6);
	size_t n = json_object_is_type(vmms, json_type_array) ? json_object_array_length(vmms) : 0;
	int k = 0;

	if (n == 0) {
		printf("No VMMs registered.\n");
		return;
	}

	k |= table_add(&t, "VM ID") | table_add(&t, "STATE") | table_add(&t, "CONNECTED") |
	     table_add(&t, "PID") | table_add(&t, "FDS") | table_add(&t, "DEVICES");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vmms, i), *c = member(v, "connected");
		int64_t x;

		k |= table_add(&t, str(v, "vm_id"));
		k |= table_add(&t, str(v, "state"));
		k |= table_add(&t, json_object_is_type(c, json_type_boolean)
					   ? (json_object_get_boolean(c) ? "yes" : "no")
					   : NULL);
		k |= int_member(v, "pid", &x) ? table_addf(&t, "%" PRId64, x) : table_add(&t, NULL);
		k |= int_member(v, "fds", &x) ? table_addf(&t, "%" PRId64, x) : table_add(&t, NULL);
		k |= add_devices_cell(&t, member(v, "devices"), str(v, "finish_error"));
	}
	if (k == 0)
		table_print(&t, stdout);
	table_done(&t);
	printf("\n%zu VMM%s listed.\n", n, n == 1 ? "" : "s");
}

static void print_phases(json_object *phases)
{
	size_t n =
	    json_object_is_type(phases, json_type_array) ? json_object_array_length(phases) : 0;
	Table t = TABLE_NULL(3);
	int k = 0;

	if (n == 0)
		return;
	k |= table_add(&t, "PHASE") | table_add(&t, "START") | table_add(&t, "DURATION");
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(phases, i);
		char ts[32], d[32];
		int64_t start, end;

		k |= table_add(&t, str(p, "name"));
		k |= table_add(&t, int_member(p, "start_us", &start) && start >= 0
					   ? format_timestamp(ts, (usec_t)start)
					   : NULL);
		k |= table_add(&t, int_member(p, "end_us", &end)
				       ? format_span(d, p, "start_us", "end_us")
				       : "(running)");
	}
	printf("\n");
	if (k == 0)
		table_print(&t, stdout);
	table_done(&t);
}

/* The blackout's phases on the handover clock, when the daemon had one. */
static void print_timeline(json_object *tl)
{
	static const struct {
		const char *key, *name, *what;
	} rows[] = {
		{ "freeze_barrier_us", "freeze barrier", "the last VMM froze" },
		{ "kexec_boot_us", "kexec and boot", "the new kernel's daemon started" },
		{ "restore_us", "restore", "it was ready to hand sessions back" },
		{ "handback_us", "handback", "the last VM resumed" },
		{ "blackout_us", "= blackout", "from the first FREEZE to the last VM resumed" },
	};
	Table t = TABLE_NULL(3);
	int k = 0;

	if (!json_object_is_type(tl, json_type_object))
		return;
	k |= table_add(&t, "BLACKOUT (TSC)") | table_add(&t, "DURATION") |
	     table_add(&t, "ENDS WHEN");
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		char d[32];
		int64_t us;

		k |= table_add(&t, rows[i].name);
		k |= table_add(&t, int_member(tl, rows[i].key, &us) ? format_ms(d, us) : NULL);
		k |= table_add(&t, rows[i].what);
	}
	printf("\n");
	if (k == 0)
		table_print(&t, stdout);
	table_done(&t);
}

static void print_report_vmms(json_object *vmms)
{
	size_t n = json_object_is_type(vmms, json_type_array) ? json_object_array_length(vmms) : 0;
	Table t = TABLE_NULL(5);
	int k = 0;

	if (n == 0)
		return;
	/* Frozen after: how long the VMM took to freeze; paused: how long its VM did not run. */
	k |= table_add(&t, "VM ID") | table_add(&t, "OUTCOME") | table_add(&t, "FROZEN AFTER") |
	     table_add(&t, "PAUSED") | table_add(&t, "FDS");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vmms, i);
		char a[32], b[32];
		int64_t fds, us;

		k |= table_add(&t, str(v, "vm_id"));
		k |= table_add(&t, str(v, "outcome"));
		k |= table_add(&t, format_span(a, v, "freeze_requested_us", "frozen_us"));
		/* the TSC's figure when there is one: CLOCK_REALTIME jumps at the kexec */
		if (int_member(v, "blackout_us", &us))
			k |= table_add(&t, format_ms(b, us));
		else
			k |= table_add(&t, format_span(b, v, "freeze_requested_us", "resumed_us"));
		k |= int_member(v, "fds", &fds) ? table_addf(&t, "%" PRId64, fds)
						: table_add(&t, NULL);
	}
	printf("\n");
	if (k == 0)
		table_print(&t, stdout);
	table_done(&t);
}

void output_report(json_object *r)
{
	json_object *report = member(r, "report"), *err, *tl;
	char buf[32];
	int64_t blackout, hz;

	if (!json_object_is_type(report, json_type_object)) {
		printf("No update report available.\n");
		return;
	}

	printf("Update:       %s\n", or_dash(str(report, "update_id")));
	printf("Outcome:      %s\n", or_dash(str(report, "outcome")));
	err = member(report, "error");
	if (str(err, "code"))
		printf("Error:        %s (%s)\n", or_dash(str(err, "message")), str(err, "code"));
	print_kernel(member(report, "kernel"), "");
	tl = member(report, "timeline");
	if (int_member(report, "blackout_us", &blackout)) {
		printf("Blackout:     %s", format_ms(buf, blackout));
		if (int_member(tl, "tsc_hz", &hz))
			printf(" (TSC, %" PRId64 ".%03" PRId64 " MHz)", hz / 1000000,
			       hz / 1000 % 1000);
		else
			printf(" (CLOCK_REALTIME: only as good as the RTC across the reboot)");
		printf("\n");
	}

	print_timeline(tl);
	print_phases(member(report, "phases"));
	print_report_vmms(member(report, "vmms"));
}

void output_prepared(json_object *r, const char *kernel)
{
	int64_t n = vmm_count(member(r, "vmms")), us;
	char buf[32];

	printf("Prepared update %s: ", or_dash(str(r, "update_id")));
	if (n >= 0)
		printf("%" PRId64 " VMM%s, ", n, n == 1 ? "" : "s");
	printf("kernel %s", kernel);
	if (str(r, "cmdline"))
		printf(", cmdline %s", str(r, "cmdline"));
	if (int_member(r, "duration_us", &us))
		printf(" (%s)", format_ms(buf, us));
	printf("\n");
}

void output_rebooting(json_object *r)
{
	char buf[32];
	int64_t us;

	if (int_member(r, "freeze_us", &us))
		printf("Update %s: VMMs frozen in %s\n", or_dash(str(r, "update_id")),
		       format_ms(buf, us));
	printf("Jumping into the new kernel\n");
	fflush(stdout);
}
