/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * liveupdate-refvmm: the reference VMM. It does what a real VMM does with
 * libliveupdate-vmm and nothing else: its guest RAM is memfds that a writer
 * thread keeps changing while the "VM" runs, it preserves them at PREPARE,
 * stops the writer and records where it stopped at FREEZE, and after the
 * kexec a new process retrieves the files and checks every byte against
 * the model before it lets the writer go on. Every step is one JSON line on
 * stdout so tests and the QEMU demo can follow it; help() lists them.
 *
 * Its own blackout, freeze to resume, is measured on the TSC (the handover
 * clock the daemon uses too): the frozen process stores its stamp in the
 * vmstate, the new one subtracts it from its own and converts the ticks
 * with its own calibration.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <liveupdate/vmm.h>

#include "guest-ram.h"
#include "handover-clock.h"
#include "vmstate.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_CORRUPT = 3,
	EXIT_HANGUP = 4,
	RUN_ON = -1, /* handlers: keep the VM running */
};

enum mode { MODE_SEND, MODE_SELF };

/*
 * --fault ACTION@PHASE: what goes wrong, and when. The matrix of them is
 * tests/integration/test_fault_matrix.py; README's "Fault matrix" is its
 * outcome.
 */
enum fault_action {
	ACTION_NONE,
	ACTION_CRASH,      /* SIGKILL ourselves: no cleanup, no goodbye */
	ACTION_HANG,       /* stop reading the daemon's socket; keep it open */
	ACTION_DISCONNECT, /* close the daemon's socket; run on with the RAM */
	ACTION_EXIT,       /* exit(1), the old exit-* faults */
	ACTION_IGNORE,     /* leave this one request unanswered, serve the rest */
	ACTION_BAD_PRESERVES,
	_ACTION_MAX,
};

static const char *const action_names[_ACTION_MAX] = {
	[ACTION_NONE] = "none",
	[ACTION_CRASH] = "crash",
	[ACTION_HANG] = "hang",
	[ACTION_DISCONNECT] = "disconnect",
	[ACTION_EXIT] = "exit",
	[ACTION_IGNORE] = "ignore",
	[ACTION_BAD_PRESERVES] = "bad-preserves",
};

enum fault_phase {
	PHASE_NONE,
	PHASE_REGISTERING, /* right after HELLO was answered (RAM exists) */
	PHASE_PRESERVING,  /* on PREPARE, before preserving anything */
	PHASE_PREPARED,    /* right after PREPARE_DONE was answered */
	PHASE_FREEZING,    /* on FREEZE, the VM still running */
	PHASE_FROZEN,      /* right after FROZEN was sent */
	PHASE_RESTORING,   /* on RESTORE, before retrieving any file */
	PHASE_RESTORED,    /* files retrieved and verified, before RESUMED */
	_PHASE_MAX,
};

static const char *const phase_names[_PHASE_MAX] = {
	[PHASE_NONE] = "none",
	[PHASE_REGISTERING] = "registering",
	[PHASE_PRESERVING] = "preserving",
	[PHASE_PREPARED] = "prepared",
	[PHASE_FREEZING] = "freezing",
	[PHASE_FROZEN] = "frozen",
	[PHASE_RESTORING] = "restoring",
	[PHASE_RESTORED] = "restored",
};

/* Where "ignore" has a request to leave unanswered. */
#define PHASES_WITH_REQUEST                                                                   \
	((1u << PHASE_PRESERVING) | (1u << PHASE_FREEZING) | (1u << PHASE_RESTORING) |        \
	 (1u << PHASE_RESTORED))

/* The names the tests used before ACTION@PHASE, each one of its cells. */
static const struct {
	const char *name;
	enum fault_action action;
	enum fault_phase phase;
} fault_aliases[] = {
	{ "exit-at-prepare", ACTION_EXIT, PHASE_PRESERVING },
	{ "hang-at-prepare", ACTION_IGNORE, PHASE_PRESERVING },
	{ "exit-at-freeze", ACTION_EXIT, PHASE_FREEZING },
	{ "ignore-freeze", ACTION_IGNORE, PHASE_FREEZING },
	{ "exit-after-restore", ACTION_EXIT, PHASE_RESTORED },
	{ "bad-preserves", ACTION_BAD_PRESERVES, PHASE_PRESERVING },
};

struct fault {
	const char *name; /* as given */
	enum fault_action action;
	enum fault_phase phase;
};

/* Not a handler's exit code: no fault here, go on. */
#define NO_FAULT (-2)

struct refvmm {
	const char *vm_id;
	const char *socket;
	uint64_t mem_mib;
	uint64_t ram_fds;
	uint64_t seed;
	enum mode mode;
	struct fault fault;
	bool freeze_hold; /* --freeze-hold: FROZEN waits for SIGUSR2 */
	uint64_t nap_us;  /* --write-nap-us */

	struct lu_vmm *vmm;
	struct guest_ram ram;
	int vmstate_fd;
	bool frozen; /* the VM does not run: frozen (no THAW yet), or restored, not resumed */
	bool hung;   /* hang fault: the daemon's socket is no longer read */
	bool disconnected; /* disconnect fault: vmm is gone, the VM runs on */

	/* --freeze-hold: the VM stopped at FREEZE; FROZEN goes on SIGUSR2 */
	bool held;
	uint64_t held_start_us, held_checksum, held_tsc;
	uint32_t held_timeout_ms;

	/* After the writer was let go, until it has been seen to write again. */
	const char *watch_after; /* "resume", "thaw", "verify"; NULL: not watching */
	uint64_t watch_base;     /* words written when it was let go */
};

/* How often the main loop looks for the writer's progress while it watches. */
#define WATCH_INTERVAL_MS 10

static int signal_pipe[2] = { -1, -1 };

static uint64_t now_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static json_object *event_new(const char *name)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(name));
	return o;
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* A handover clock figure, or null when there is none (0). */
static void add_u64_or_null(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, v ? json_object_new_int64((int64_t)v) : NULL);
}

static void add_hex(json_object *o, const char *key, uint64_t v)
{
	char buf[17];

	snprintf(buf, sizeof(buf), "%016" PRIx64, v);
	json_object_object_add(o, key, json_object_new_string(buf));
}

/* One line per event, flushed at once: a test may kill us right after. */
static void emit(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}

static void emit_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit_error(const char *fmt, ...)
{
	json_object *o = event_new("error");
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "liveupdate-refvmm: %s\n", msg);
	json_object_object_add(o, "message", json_object_new_string(msg));
	emit(o);
}

/*
 * The fault of --fault, if it is due in this phase: act, and return what
 * the handler is to return at once (RUN_ON, or an exit code), or NO_FAULT.
 */
static int fault_at(struct refvmm *r, enum fault_phase phase)
{
	json_object *o;

	if (r->fault.phase != phase || r->fault.action == ACTION_BAD_PRESERVES ||
	    r->fault.action == ACTION_NONE)
		return NO_FAULT;

	o = event_new("fault");
	json_object_object_add(o, "fault", json_object_new_string(r->fault.name));
	json_object_object_add(o, "action", json_object_new_string(action_names[r->fault.action]));
	json_object_object_add(o, "phase", json_object_new_string(phase_names[phase]));
	emit(o);

	switch (r->fault.action) {
	case ACTION_CRASH:
		/* abruptly: no atexit, no sanitizer report, no close of our own */
		(void)kill(getpid(), SIGKILL);
		abort();
	case ACTION_HANG:
		r->hung = true;
		return RUN_ON;
	case ACTION_DISCONNECT:
		/* the VM and its RAM stay; whatever the daemon sent is dropped */
		r->vmm = lu_vmm_free(r->vmm);
		r->disconnected = true;
		return RUN_ON;
	case ACTION_EXIT:
		return EXIT_ERROR;
	case ACTION_IGNORE:
	default:
		return RUN_ON;
	}
}

/* Still talking to the daemon? Handlers stop draining its events when not. */
static bool connected(const struct refvmm *r)
{
	return r->vmm && !r->hung && !r->disconnected;
}

static uint64_t ram_bytes(const struct refvmm *r)
{
	return (uint64_t)r->ram.n_files * r->ram.bytes_per_file;
}

static int preserve(struct refvmm *r, int fd, uint64_t token)
{
	if (r->mode == MODE_SELF)
		return lu_vmm_session_preserve_fd(r->vmm, fd, token);
	return lu_vmm_preserve_fd(r->vmm, fd, token);
}

/*
 * The bad-preserves fault asks for what must be refused, a pipe (no LUO
 * handler: ENOENT) and a token already taken (EEXIST), reports the errors,
 * and then prepares normally: a refusal must cost nothing else.
 */
static int try_bad_preserves(struct refvmm *r)
{
	static const uint64_t pipe_token = 0x20000;
	int p[2], k;
	json_object *o;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	k = preserve(r, p[0], pipe_token);
	close(p[0]);
	close(p[1]);
	o = event_new("refused");
	json_object_object_add(o, "what", json_object_new_string("pipe"));
	json_object_object_add(o, "error", json_object_new_int(k));
	emit(o);
	if (k >= 0)
		return -EBADE;

	k = preserve(r, r->ram.files[0].fd, 1);
	if (k < 0)
		return k;
	k = preserve(r, r->vmstate_fd, 1);
	o = event_new("refused");
	json_object_object_add(o, "what", json_object_new_string("duplicate-token"));
	json_object_object_add(o, "error", json_object_new_int(k));
	emit(o);
	return k >= 0 ? -EBADE : 0;
}

/*
 * A failed preparation leaves the VM running and PREPARE unanswered: the
 * daemon's deadline aborts the update and THAWs us, as with a real VMM.
 */
static int on_prepare(struct refvmm *r, const struct lu_vmm_event *ev)
{
	size_t n_fds = r->ram.n_files + 1;
	json_object *o;
	int k;

	k = fault_at(r, PHASE_PRESERVING);
	if (k != NO_FAULT)
		return k;
	if (ev->max_fds < n_fds) {
		emit_error("the daemon allows %u fds, this VM needs %zu", ev->max_fds, n_fds);
		return RUN_ON;
	}

	if (r->fault.action == ACTION_BAD_PRESERVES) {
		k = try_bad_preserves(r);
		if (k < 0) {
			emit_error("a bad preserve was not refused as it should be: %s", strerror(-k));
			return RUN_ON;
		}
	}
	/* bad-preserves already preserved the first file */
	for (size_t i = r->fault.action == ACTION_BAD_PRESERVES ? 1 : 0; i < r->ram.n_files; i++) {
		k = preserve(r, r->ram.files[i].fd, i + 1);
		if (k < 0) {
			emit_error("preserving guest-ram-%zu: %s", i, strerror(-k));
			return RUN_ON;
		}
	}
	k = preserve(r, r->vmstate_fd, VMSTATE_TOKEN);
	if (k < 0) {
		emit_error("preserving vmstate: %s", strerror(-k));
		return RUN_ON;
	}
	k = lu_vmm_prepare_done(r->vmm);
	if (k < 0) {
		emit_error("prepare done: %s", strerror(-k));
		return RUN_ON;
	}

	o = event_new("prepared");
	json_object_object_add(o, "update_id", json_object_new_string(ev->update_id));
	add_u64(o, "fds", n_fds);
	emit(o);
	k = fault_at(r, PHASE_PREPARED);
	return k != NO_FAULT ? k : RUN_ON;
}

/* The writer was let go: say "writing" once it has written (watch_progress). */
static void watch_start(struct refvmm *r, const char *after)
{
	r->watch_after = after;
	r->watch_base = guest_ram_words_written(&r->ram);
}

static void watch_progress(struct refvmm *r)
{
	uint64_t n;
	json_object *o;

	if (!r->watch_after)
		return;
	n = guest_ram_words_written(&r->ram) - r->watch_base;
	if (n == 0)
		return;
	o = event_new("writing");
	json_object_object_add(o, "after", json_object_new_string(r->watch_after));
	add_u64(o, "words", n);
	emit(o);
	r->watch_after = NULL;
}

/* FROZEN to the daemon, and the event; the VM has been stopped since start_us. */
static int send_frozen(struct refvmm *r, uint64_t start_us, uint64_t checksum, uint32_t timeout_ms,
		       uint64_t tsc)
{
	json_object *o;
	int k;

	k = lu_vmm_frozen(r->vmm);
	if (k < 0) {
		emit_error("frozen: %s", strerror(-k));
		return RUN_ON;
	}

	o = event_new("frozen");
	add_hex(o, "checksum", checksum);
	add_u64(o, "bytes", ram_bytes(r));
	add_u64(o, "freeze_us", now_us(CLOCK_MONOTONIC) - start_us);
	add_u64(o, "timeout_ms", timeout_ms);
	add_u64_or_null(o, "tsc", tsc);
	emit(o);
	k = fault_at(r, PHASE_FROZEN);
	return k != NO_FAULT ? k : RUN_ON;
}

static int on_freeze(struct refvmm *r, const struct lu_vmm_event *ev)
{
	uint64_t start = now_us(CLOCK_MONOTONIC), checksum, frozen_at, tsc = 0;
	json_object *o;
	int k;

	k = fault_at(r, PHASE_FREEZING);
	if (k != NO_FAULT)
		return k;

	guest_ram_pause(&r->ram);
	/* the writer is parked: from here the VM does not run */
	(void)handover_clock_now(&tsc);
	r->frozen = true;
	watch_progress(r);
	r->watch_after = NULL;
	frozen_at = now_us(CLOCK_REALTIME);
	checksum = guest_ram_checksum(&r->ram);
	k = vmstate_write(r->vmstate_fd, &r->ram, checksum, frozen_at, tsc);
	if (k < 0) {
		emit_error("writing vmstate: %s", strerror(-k));
		return RUN_ON;
	}
	if (r->freeze_hold) {
		r->held = true;
		r->held_start_us = start;
		r->held_checksum = checksum;
		r->held_timeout_ms = ev->timeout_ms;
		r->held_tsc = tsc;
		o = event_new("held");
		add_hex(o, "checksum", checksum);
		emit(o);
		return RUN_ON;
	}
	return send_frozen(r, start, checksum, ev->timeout_ms, tsc);
}

/* SIGUSR2: a held FROZEN goes now (nothing held: nothing to do). */
static int on_release_signal(struct refvmm *r)
{
	if (!r->held || !connected(r))
		return RUN_ON;
	r->held = false;
	return send_frozen(r, r->held_start_us, r->held_checksum, r->held_timeout_ms, r->held_tsc);
}

/*
 * SIGUSR1: check every byte against the model, as a restore does, with the
 * writer parked, then let it go on (unless the VM is frozen).
 */
static int on_verify_signal(struct refvmm *r)
{
	char err[256] = "";
	uint64_t bad;
	json_object *o;

	guest_ram_pause(&r->ram);
	bad = guest_ram_verify(&r->ram, err, sizeof(err));
	o = event_new("verified");
	add_u64(o, "verified_bytes", ram_bytes(r));
	add_u64(o, "bad_words", bad);
	json_object_object_add(o, "frozen", json_object_new_boolean(r->frozen));
	emit(o);
	if (bad) {
		emit_error("%" PRIu64 " words differ from the model; first: %s", bad, err);
		return EXIT_CORRUPT;
	}
	if (!r->frozen) {
		guest_ram_resume(&r->ram);
		watch_progress(r);
		watch_start(r, "verify");
	}
	return RUN_ON;
}

/* Stopped or not, nothing but the writer may have touched the RAM. */
static int on_thaw(struct refvmm *r, const struct lu_vmm_event *ev)
{
	char err[256] = "";
	uint64_t bad;
	json_object *o;

	guest_ram_pause(&r->ram);
	bad = guest_ram_verify(&r->ram, err, sizeof(err));
	if (bad) {
		emit_error("after thaw, %" PRIu64 " words differ; first: %s", bad, err);
		return EXIT_CORRUPT;
	}
	r->frozen = false;
	r->held = false; /* a THAW crossed the FROZEN we held back */
	guest_ram_resume(&r->ram);
	watch_progress(r); /* a THAW after a THAW: the first one's, if it is due */
	watch_start(r, "thaw");

	o = event_new("thawed");
	add_u64(o, "verified_bytes", ram_bytes(r));
	json_object_object_add(o, "error", json_object_new_int(ev->error));
	emit(o);
	return RUN_ON;
}

static bool token_listed(const struct lu_vmm_event *ev, uint64_t token)
{
	for (uint32_t i = 0; i < ev->n_tokens; i++)
		if (ev->tokens[i] == token)
			return true;
	return false;
}

/* Retrieve vmstate and RAM as the frozen process left them. */
static int restore_files(struct refvmm *r, const struct lu_vmm_event *ev, struct vmstate *st)
{
	int fd, k;

	if (!token_listed(ev, VMSTATE_TOKEN)) {
		emit_error("RESTORE lists no vmstate (token %#x)", VMSTATE_TOKEN);
		return EXIT_CORRUPT;
	}
	fd = lu_vmm_restored_fd(r->vmm, VMSTATE_TOKEN);
	if (fd < 0) {
		emit_error("retrieving vmstate: %s", strerror(-fd));
		return EXIT_CORRUPT;
	}
	r->vmstate_fd = fd;
	k = vmstate_read(fd, st);
	if (k < 0) {
		emit_error("vmstate unreadable: %s", strerror(-k));
		return EXIT_CORRUPT;
	}

	k = guest_ram_init(&r->ram, st->seed, st->n_files, st->bytes_per_file);
	if (k < 0) {
		emit_error("vmstate geometry: %s", strerror(-k));
		return EXIT_CORRUPT;
	}
	r->ram.nap_us = (unsigned)r->nap_us;
	for (size_t i = 0; i < r->ram.n_files; i++) {
		fd = lu_vmm_restored_fd(r->vmm, i + 1);
		if (fd < 0) {
			emit_error("retrieving guest-ram-%zu: %s", i, strerror(-fd));
			return EXIT_CORRUPT;
		}
		k = guest_ram_adopt_file(&r->ram, i, fd, st->files[i].pass, st->files[i].pos);
		if (k < 0) {
			close(fd);
			emit_error("guest-ram-%zu: %s", i,
				   k == -EBADMSG ? "wrong size" : strerror(-k));
			return EXIT_CORRUPT;
		}
	}
	return RUN_ON;
}

/*
 * Our blackout, from the old process's freeze to our resume: a difference
 * of ticks, converted with this process's calibration (which may wait a
 * few ms for it, after the VM runs again). Null where there is no TSC or
 * the old process left no stamp, or the TSC went backwards.
 */
static void emit_resumed(uint64_t frozen_tsc, uint64_t resumed_tsc)
{
	json_object *o = event_new("resumed"), *blackout = NULL;
	uint64_t hz = 0;

	if (handover_clock_hz(&hz) < 0)
		hz = 0;
	if (hz && frozen_tsc && resumed_tsc >= frozen_tsc)
		blackout = json_object_new_int64(
			(int64_t)handover_clock_ticks_to_us(resumed_tsc - frozen_tsc, hz));
	add_u64_or_null(o, "frozen_tsc", frozen_tsc);
	add_u64_or_null(o, "resumed_tsc", resumed_tsc);
	add_u64_or_null(o, "tsc_hz", hz);
	json_object_object_add(o, "blackout_us", blackout);
	emit(o);
}

static int on_restore(struct refvmm *r, const struct lu_vmm_event *ev)
{
	struct vmstate st;
	char err[256] = "";
	uint64_t bad, checksum, resumed_tsc = 0;
	json_object *o;
	int k;

	if (r->ram.n_files) {
		emit_error("RESTORE for a VM that already runs; ignored");
		return RUN_ON;
	}
	k = fault_at(r, PHASE_RESTORING);
	if (k != NO_FAULT)
		return k;
	k = restore_files(r, ev, &st);
	if (k != RUN_ON)
		return k;
	/* back, but not running until the writer starts */
	r->frozen = true;

	bad = guest_ram_verify(&r->ram, err, sizeof(err));
	checksum = guest_ram_checksum(&r->ram);
	o = event_new("restored");
	json_object_object_add(o, "update_id", json_object_new_string(ev->update_id));
	add_u64(o, "verified_bytes", bad ? 0 : ram_bytes(r));
	json_object_object_add(o, "checksum_ok", json_object_new_boolean(checksum == st.checksum));
	add_hex(o, "checksum", checksum);
	add_u64(o, "frozen_realtime_us", st.frozen_realtime_us);
	emit(o);
	if (bad) {
		emit_error("%" PRIu64 " words differ from the model; first: %s", bad, err);
		return EXIT_CORRUPT;
	}
	if (checksum != st.checksum) {
		emit_error("checksum %016" PRIx64 ", recorded at freeze %016" PRIx64, checksum,
			   st.checksum);
		return EXIT_CORRUPT;
	}
	k = fault_at(r, PHASE_RESTORED);
	if (k != NO_FAULT)
		return k;

	/* the writer goes on from where the old process stopped it */
	k = guest_ram_start(&r->ram);
	if (k < 0) {
		emit_error("starting the writer: %s", strerror(-k));
		return EXIT_ERROR;
	}
	r->frozen = false;
	(void)handover_clock_now(&resumed_tsc);
	watch_start(r, "resume");
	k = lu_vmm_resumed(r->vmm);
	if (k < 0) {
		emit_error("resumed: %s", strerror(-k));
		return RUN_ON;
	}
	emit_resumed(st.frozen_tsc, resumed_tsc);
	return RUN_ON;
}

static int handle_event(struct refvmm *r, const struct lu_vmm_event *ev)
{
	switch (ev->type) {
	case LU_VMM_EVENT_PREPARE:
		return on_prepare(r, ev);
	case LU_VMM_EVENT_FREEZE:
		return on_freeze(r, ev);
	case LU_VMM_EVENT_THAW:
		return on_thaw(r, ev);
	case LU_VMM_EVENT_RESTORE:
		return on_restore(r, ev);
	case LU_VMM_EVENT_HANGUP:
		emit(event_new("hangup"));
		return EXIT_HANGUP;
	default:
		return RUN_ON;
	}
}

/* Everything the library has, including what it queued while waiting for replies. */
static int dispatch(struct refvmm *r)
{
	struct lu_vmm_event ev;
	int k, code;

	while (connected(r)) {
		k = lu_vmm_next_event(r->vmm, &ev);
		if (k == 0)
			return RUN_ON;
		if (k == -EBADMSG) {
			emit_error("the daemon sent a malformed message");
			continue;
		}
		if (k < 0) {
			emit_error("reading from the daemon: %s", strerror(-k));
			return EXIT_ERROR;
		}
		code = handle_event(r, &ev);
		if (code != RUN_ON)
			return code;
	}
	return RUN_ON;
}

/* A fresh VM: RAM and vmstate exist before anyone asks to preserve them. */
static int boot(struct refvmm *r)
{
	json_object *o;
	int k;

	k = guest_ram_init(&r->ram, r->seed, r->ram_fds, r->mem_mib << 20);
	r->ram.nap_us = (unsigned)r->nap_us;
	for (size_t i = 0; k >= 0 && i < r->ram.n_files; i++)
		k = guest_ram_create_file(&r->ram, i);
	if (k >= 0) {
		k = vmstate_create();
		r->vmstate_fd = k;
	}
	if (k >= 0)
		k = guest_ram_start(&r->ram);
	if (k < 0) {
		emit_error("creating guest RAM: %s", strerror(-k));
		return EXIT_ERROR;
	}
	o = event_new("running");
	add_u64(o, "bytes", ram_bytes(r));
	add_u64(o, "ram_fds", r->ram.n_files);
	emit(o);
	return RUN_ON;
}

static int run(struct refvmm *r)
{
	struct lu_vmm_event first;
	struct pollfd p[2];
	json_object *o;
	int k, code;

	k = lu_vmm_connect(r->socket, r->vm_id, &r->vmm);
	if (k < 0) {
		emit_error("connecting to liveupdated: %s", strerror(-k));
		return EXIT_ERROR;
	}
	/* the library holds back connect until an announced RESTORE is here */
	k = lu_vmm_next_event(r->vmm, &first);
	if (k < 0) {
		emit_error("reading from the daemon: %s", strerror(-k));
		return EXIT_ERROR;
	}

	o = event_new("registered");
	json_object_object_add(o, "vm_id", json_object_new_string(r->vm_id));
	json_object_object_add(o, "restore",
			       json_object_new_boolean(first.type == LU_VMM_EVENT_RESTORE));
	emit(o);

	if (first.type != LU_VMM_EVENT_RESTORE) {
		code = boot(r);
		if (code != RUN_ON)
			return code;
	}
	code = fault_at(r, PHASE_REGISTERING);
	if (code == NO_FAULT)
		code = handle_event(r, &first);
	if (code == RUN_ON)
		code = dispatch(r);

	while (code == RUN_ON) {
		/* a hung or disconnected VMM still answers signals */
		p[0] = (struct pollfd){ .fd = connected(r) ? lu_vmm_get_fd(r->vmm) : -1,
					.events = POLLIN };
		p[1] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		/* a timeout only while we wait for the writer to show progress */
		k = poll(p, 2, r->watch_after ? WATCH_INTERVAL_MS : -1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			emit_error("poll: %m");
			return EXIT_ERROR;
		}
		watch_progress(r);
		if (p[1].revents) {
			unsigned char sig = 0;

			if (read(signal_pipe[0], &sig, 1) != 1)
				continue;
			if (sig == SIGUSR1) {
				code = on_verify_signal(r);
				continue;
			}
			if (sig == SIGUSR2) {
				code = on_release_signal(r);
				if (code == RUN_ON)
					code = dispatch(r);
				continue;
			}
			o = event_new("exit");
			json_object_object_add(o, "signal",
					       json_object_new_string(sigabbrev_np(sig)));
			emit(o);
			return EXIT_OK;
		}
		if (p[0].revents)
			code = dispatch(r);
	}
	return code;
}

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	(void)!write(signal_pipe[1], &c, 1);
	errno = saved;
}

static int setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };

	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGUSR2, &sa, NULL) < 0)
		return -errno;
	return 0;
}

static void help(void)
{
	printf("Usage: liveupdate-refvmm --vm-id ID [OPTIONS]\n\n"
	       "The reference VMM for liveupdated: guest RAM in memfds, kept busy by a\n"
	       "writer thread, preserved across a kernel live update and checked byte for\n"
	       "byte afterwards. One JSON object per line on stdout for every event.\n\n"
	       "  --vm-id ID        the VM's id (mandatory; the same after the kexec)\n"
	       "  --socket PATH     liveupdated's VMM socket (default: $LIVEUPDATED_VMM_SOCKET\n"
	       "                    or /run/liveupdated/vmm.sock)\n"
	       "  --mem-mib N       guest RAM per memfd in MiB (default 16)\n"
	       "  --ram-fds N       number of RAM memfds, 1..%d (default 1)\n"
	       "  --mode send|self  send: the daemon preserves the fds (default);\n"
	       "                    self: preserve into the LUO session directly\n"
	       "  --seed N          seed of the RAM contents (default 1)\n"
	       "  --fault ACTION@PHASE  misbehave, for tests (see Faults below)\n"
	       "  --freeze-hold     stop the VM at FREEZE but send FROZEN only on SIGUSR2\n"
	       "                    (a slow freezer, on cue; a THAW cancels the hold)\n"
	       "  --write-nap-us N  the writer sleeps N us after each turn (default 0: it\n"
	       "                    never rests); many VMs on few CPUs need it\n"
	       "  -h, --help        this text\n\n"
	       "After a kexec, start it again with the same --vm-id: RAM size, count and\n"
	       "seed then come from the preserved vmstate, not from the options.\n\n"
	       "SIGUSR1 checks every byte of RAM against the model, the writer parked.\n\n"
	       "Faults (--fault ACTION@PHASE):\n"
	       "  ACTION  crash       SIGKILL itself (no cleanup, no goodbye)\n"
	       "          hang        stop reading the daemon's socket, keep it open;\n"
	       "                      the VM stays as it is, signals still work\n"
	       "          disconnect  close the daemon's socket; the VM stays as it is\n"
	       "                      (running, or stopped) and keeps its RAM\n"
	       "          exit        exit with status 1\n"
	       "          ignore      leave the phase's request unanswered, serve the\n"
	       "                      rest (preserving, freezing, restoring, restored)\n"
	       "  PHASE   registering right after connecting (a fresh VM's RAM exists)\n"
	       "          preserving  on PREPARE, before preserving anything\n"
	       "          prepared    after answering PREPARE, before the commit\n"
	       "          freezing    on FREEZE, the VM still running\n"
	       "          frozen      after FROZEN, before the reboot\n"
	       "          restoring   after the reboot: connected, before retrieving files\n"
	       "          restored    files retrieved and verified, before RESUMED\n"
	       "  Older names, kept: exit-at-prepare (exit@preserving), hang-at-prepare\n"
	       "  (ignore@preserving), exit-at-freeze (exit@freezing), ignore-freeze\n"
	       "  (ignore@freezing), exit-after-restore (exit@restored), and\n"
	       "  bad-preserves (a pipe and a taken token, refused, then prepare).\n"
	       "  The restoring and restored faults act only in a restarted VMM.\n\n"
	       "Events (\"event\" names them; *_tsc are raw TSC ticks, null without a TSC):\n"
	       "  registered {vm_id, restore}     connected; restore: a RESTORE is waiting\n"
	       "  running    {bytes, ram_fds}     a fresh VM, the writer started\n"
	       "  prepared   {update_id, fds}     RAM and vmstate preserved\n"
	       "  frozen     {checksum, bytes, freeze_us, timeout_ms, tsc}\n"
	       "                                  writer parked (tsc: then), vmstate written\n"
	       "  thawed     {verified_bytes, error}  update aborted: RAM checked, writer on\n"
	       "  restored   {update_id, verified_bytes, checksum_ok, checksum,\n"
	       "              frozen_realtime_us} after the kexec: RAM back and checked\n"
	       "  resumed    {frozen_tsc, resumed_tsc, tsc_hz, blackout_us}\n"
	       "                                  writer on again; blackout: freeze to resume\n"
	       "  writing    {after, words}       after \"resume\", \"thaw\" or \"verify\", the\n"
	       "                                  writer has written again: words since\n"
	       "  verified   {verified_bytes, bad_words, frozen}  SIGUSR1's check (a frozen\n"
	       "                                  VM stays frozen)\n"
	       "  refused    {what, error}        bad-preserves: what the daemon refused\n"
	       "  held       {checksum}           --freeze-hold: stopped, FROZEN held back\n"
	       "  fault      {fault, action, phase}  an injected fault happens now (fault:\n"
	       "                                  as given to --fault)\n"
	       "  hangup, exit {signal}, error {message}\n\n"
	       "Exit status:\n"
	       "  0  stopped by SIGTERM or SIGINT\n"
	       "  1  error (connecting, system calls), or an injected exit fault\n"
	       "  2  invalid options\n"
	       "  3  guest memory lost or corrupted (a restore, THAW or SIGUSR1 check failed)\n"
	       "  4  the daemon closed the connection\n",
	       VMSTATE_FILES_MAX);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ACTION@PHASE, or one of the older names (fault_aliases). */
static int parse_fault(const char *s, struct fault *ret)
{
	struct fault f = { .name = s };
	const char *at = strchr(s, '@');

	for (size_t i = 0; i < sizeof(fault_aliases) / sizeof(fault_aliases[0]); i++)
		if (!strcmp(s, fault_aliases[i].name)) {
			f.action = fault_aliases[i].action;
			f.phase = fault_aliases[i].phase;
			*ret = f;
			return 0;
		}
	if (!at)
		return -EINVAL;
	/* bad-preserves has a phase of its own; "none" is no fault */
	for (int a = ACTION_CRASH; a < ACTION_BAD_PRESERVES; a++)
		if (strlen(action_names[a]) == (size_t)(at - s) &&
		    !strncmp(s, action_names[a], (size_t)(at - s)))
			f.action = (enum fault_action)a;
	for (int p = PHASE_REGISTERING; p < _PHASE_MAX; p++)
		if (!strcmp(at + 1, phase_names[p]))
			f.phase = (enum fault_phase)p;
	if (f.action == ACTION_NONE || f.phase == PHASE_NONE)
		return -EINVAL;
	if (f.action == ACTION_IGNORE && !(PHASES_WITH_REQUEST & (1u << f.phase)))
		return -EINVAL;
	*ret = f;
	return 0;
}

static int parse_args(int argc, char **argv, struct refvmm *r)
{
	enum {
		ARG_VM_ID = 0x100,
		ARG_SOCKET,
		ARG_MEM,
		ARG_FDS,
		ARG_MODE,
		ARG_SEED,
		ARG_FAULT,
		ARG_FREEZE_HOLD,
		ARG_WRITE_NAP,
	};
	static const struct option options[] = {
		{ "vm-id", required_argument, NULL, ARG_VM_ID },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "mem-mib", required_argument, NULL, ARG_MEM },
		{ "ram-fds", required_argument, NULL, ARG_FDS },
		{ "mode", required_argument, NULL, ARG_MODE },
		{ "seed", required_argument, NULL, ARG_SEED },
		{ "fault", required_argument, NULL, ARG_FAULT },
		{ "freeze-hold", no_argument, NULL, ARG_FREEZE_HOLD },
		{ "write-nap-us", required_argument, NULL, ARG_WRITE_NAP },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case ARG_VM_ID:
			r->vm_id = optarg;
			break;
		case ARG_SOCKET:
			r->socket = optarg;
			break;
		case ARG_MEM:
			if (parse_u64(optarg, 1, 1 << 20, &r->mem_mib) < 0)
				goto bad;
			break;
		case ARG_FDS:
			if (parse_u64(optarg, 1, VMSTATE_FILES_MAX, &r->ram_fds) < 0)
				goto bad;
			break;
		case ARG_MODE:
			if (!strcmp(optarg, "send"))
				r->mode = MODE_SEND;
			else if (!strcmp(optarg, "self"))
				r->mode = MODE_SELF;
			else
				goto bad;
			break;
		case ARG_SEED:
			if (parse_u64(optarg, 0, UINT64_MAX, &r->seed) < 0)
				goto bad;
			break;
		case ARG_FAULT:
			if (parse_fault(optarg, &r->fault) < 0)
				goto bad;
			break;
		case ARG_FREEZE_HOLD:
			r->freeze_hold = true;
			break;
		case ARG_WRITE_NAP:
			if (parse_u64(optarg, 0, 1000000, &r->nap_us) < 0)
				goto bad;
			break;
		case 'h':
			help();
			exit(EXIT_OK);
		default:
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "liveupdate-refvmm: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!r->vm_id) {
		fprintf(stderr, "liveupdate-refvmm: --vm-id is mandatory\n");
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "liveupdate-refvmm: invalid value '%s' for --%s\n", optarg,
		options[c - ARG_VM_ID].name);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct refvmm r = {
		.mem_mib = 16,
		.ram_fds = 1,
		.seed = 1,
		.mode = MODE_SEND,
		.vmstate_fd = -1,
	};
	int code;

	/* the calibration of the TSC is over our whole life: start it first */
	(void)handover_clock_init();
	if (parse_args(argc, argv, &r) < 0)
		return EXIT_USAGE;
	if (setup_signals() < 0) {
		fprintf(stderr, "liveupdate-refvmm: signals: %m\n");
		return EXIT_ERROR;
	}

	code = run(&r);

	guest_ram_done(&r.ram);
	if (r.vmstate_fd >= 0)
		close(r.vmstate_fd);
	lu_vmm_free(r.vmm);
	return code;
}
