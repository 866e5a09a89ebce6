/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * liveupdatectl: a thin client of the liveupdated JSON API (see
 * man/liveupdated-api.md). It has no other way into the daemon: everything it
 * shows comes from a reply or an event on the control socket.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client.h"
#include "config.h"
#include "control-protocol.h"
#include "log.h"
#include "output.h"
#include "string-util.h"

/* The exit codes are part of the interface: scripts test them. */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the daemon refused, or the operation failed */
	EXIT_USAGE = 2,       /* bad command line, or a local file that is missing */
	EXIT_UNREACHABLE = 3, /* no daemon, lost connection, or a protocol error */
	EXIT_PERMISSION = 4,  /* not allowed to use the socket or the API */
};

#define CALL_TIMEOUT_US (30 * USEC_PER_SEC) /* commands that do not wait for VMMs */
#define PREPARE_TIMEOUT_S_MAX 3600
#define FREEZE_TIMEOUT_MS_MAX 3600000

DEFINE_FREEP(json_object, json_object_put)

static const char *arg_socket;
static bool arg_json;
static bool arg_progress = true;
static const char *arg_initrd;
static const char *arg_cmdline;
static const char *arg_append;
static uint32_t arg_timeout_ms;
static uint32_t arg_freeze_timeout_ms;

static volatile sig_atomic_t interrupted;

static void help(void)
{
	printf(
	    "%s [OPTIONS...] COMMAND ...\n"
	    "\n"
	    "Control a kernel live update under running VMs, through liveupdated.\n"
	    "\n"
	    "Commands:\n"
	    "  status                     Show the daemon's state and the current update\n"
	    "  list                       List the registered VMMs\n"
	    "  prepare KERNEL             Load KERNEL and have every VMM preserve its state\n"
	    "      --initrd FILE            initrd for the new kernel\n"
	    "      --cmdline STR            command line instead of the default one\n"
	    "      --append STR             append to the default command line\n"
	    "      --timeout SECONDS        deadline for the VMMs to preserve (1-%d)\n"
	    "  commit                     Freeze the VMs and reboot into the prepared kernel\n"
	    "      --freeze-timeout MS      deadline for the VMMs to freeze (1-%d)\n"
	    "  abort                      Abort the prepared update\n"
	    "  report                     Show the report of the last update\n"
	    "  release VM_ID              Forget a VM that did not come back after an update\n"
	    "  events                     Print the daemon's events until interrupted\n"
	    "\n"
	    "Options:\n"
	    "  -h --help                  Show this help\n"
	    "     --version               Show the version\n"
	    "     --socket PATH           Control socket (default: $LIVEUPDATED_CONTROL_SOCKET,\n"
	    "                             else %s/%s)\n"
	    "     --json                  Print results, errors and events as JSON, one per line\n"
	    "     --no-progress           Do not print progress during prepare and commit\n"
	    "\n"
	    "Exit status:\n"
	    "  0  success\n"
	    "  1  the daemon refused the request, or the operation failed\n"
	    "  2  usage error (including a KERNEL or initrd that does not exist)\n"
	    "  3  cannot reach the daemon, the connection was lost, or a protocol error\n"
	    "     (after commit: the machine may be rebooting)\n"
	    "  4  permission denied\n",
	    program_invocation_short_name, PREPARE_TIMEOUT_S_MAX, FREEZE_TIMEOUT_MS_MAX,
	    RUNTIME_DIR_DEFAULT, CONTROL_SOCKET_NAME);
}

_printf_(1, 2) static int usage_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_error("%s", buf);
	fprintf(stderr, "Try '%s --help' for more information.\n", program_invocation_short_name);
	return EXIT_USAGE;
}

static const char *socket_path(void)
{
	static char buf[PATH_MAX];
	const char *e;

	if (arg_socket)
		return arg_socket;
	e = getenv("LIVEUPDATED_CONTROL_SOCKET");
	if (e && *e)
		return e;
	snprintf(buf, sizeof(buf), "%s/%s", RUNTIME_DIR_DEFAULT, CONTROL_SOCKET_NAME);
	return buf;
}

static int connect_daemon(Client **ret)
{
	const char *path = socket_path();
	int r;

	r = client_connect(path, ret);
	if (r == -EACCES || r == -EPERM) {
		log_error("Cannot connect to liveupdated at %s: %s", path, strerror(-r));
		return EXIT_PERMISSION;
	}
	if (r == -ENOENT || r == -ECONNREFUSED) {
		log_error("Cannot connect to liveupdated at %s: %s (is it running?)", path,
			  strerror(-r));
		return EXIT_UNREACHABLE;
	}
	if (r < 0) {
		log_error("Cannot connect to liveupdated at %s: %s", path, strerror(-r));
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

/* A transport failure of client_call()/client_read(), said once at the edge. */
static int transport_error(int r)
{
	switch (r) {
	case -ECONNRESET:
		log_error("The connection to liveupdated was closed before the reply");
		break;
	case -ETIMEDOUT:
		log_error("No reply from liveupdated within %llu s",
			  (unsigned long long)(CALL_TIMEOUT_US / USEC_PER_SEC));
		break;
	case -EBADMSG:
		log_error("Protocol error: liveupdated sent a message that is not a valid reply");
		break;
	case -EMSGSIZE:
		log_error("Protocol error: a reply is longer than %u bytes", CLIENT_LINE_MAX);
		break;
	default:
		log_error("Talking to liveupdated failed: %s", strerror(-r));
		break;
	}
	return EXIT_UNREACHABLE;
}

static int exit_status_for(const char *code)
{
	switch (control_error_from_string(code)) {
	case CONTROL_ERROR_PERMISSION_DENIED:
		return EXIT_PERMISSION;
	/* We and the daemon disagree on the protocol itself. */
	case CONTROL_ERROR_INVALID_JSON:
	case CONTROL_ERROR_UNSUPPORTED_VERSION:
	case CONTROL_ERROR_UNKNOWN_METHOD:
	case CONTROL_ERROR_TOO_LARGE:
		return EXIT_UNREACHABLE;
	default:
		return EXIT_FAILED;
	}
}

/*
 * Look at a reply: on success hand out its result (a new reference); on
 * failure print the error, as JSON too with --json, and return the exit status.
 */
static int reply_result(json_object *reply, json_object **ret_result)
{
	json_object *ok, *result = NULL, *error = NULL, *code = NULL, *message = NULL;

	json_object_object_get_ex(reply, "ok", &ok);
	if (json_object_get_boolean(ok)) {
		json_object_object_get_ex(reply, "result", &result);
		if (!json_object_is_type(result, json_type_object))
			return transport_error(-EBADMSG);
		*ret_result = json_object_get(result);
		return EXIT_OK;
	}

	json_object_object_get_ex(reply, "error", &error);
	json_object_object_get_ex(error, "code", &code);
	json_object_object_get_ex(error, "message", &message);
	if (!json_object_is_type(code, json_type_string))
		return transport_error(-EBADMSG);
	if (arg_json)
		output_json(error);
	log_error("%s (%s)",
		  json_object_is_type(message, json_type_string) ? json_object_get_string(message)
								  : "request failed",
		  json_object_get_string(code));
	return exit_status_for(json_object_get_string(code));
}

static int print_progress(json_object *event, void *userdata)
{
	output_event(event, false);
	return 0;
}

/* Connect, call, check: the path every command but events takes. */
static int call(const char *method, json_object *params, bool progress, usec_t timeout_us,
		json_object **ret_result)
{
	_cleanup_(json_object_putp) json_object *reply = NULL;
	_cleanup_(client_freep) Client *c = NULL;
	int r;

	r = connect_daemon(&c);
	if (r != EXIT_OK)
		return r;
	r = client_call(c, method, params, progress, timeout_us, progress ? print_progress : NULL,
			NULL, &reply);
	if (r < 0)
		return transport_error(r);
	return reply_result(reply, ret_result);
}

static int verb_simple(const char *method, void (*print)(json_object *))
{
	_cleanup_(json_object_putp) json_object *result = NULL;
	int r;

	r = call(method, NULL, false, CALL_TIMEOUT_US, &result);
	if (r != EXIT_OK)
		return r;
	if (arg_json)
		output_json(result);
	else
		print(result);
	return EXIT_OK;
}

static int verb_status(char **args)
{
	return verb_simple("status", output_status);
}

static int verb_list(char **args)
{
	return verb_simple("list", output_list);
}

static int verb_report(char **args)
{
	return verb_simple("report", output_report);
}

static void print_aborted(json_object *r)
{
	json_object *id = NULL;

	json_object_object_get_ex(r, "update_id", &id);
	if (json_object_is_type(id, json_type_string))
		printf("Aborted update %s.\n", json_object_get_string(id));
	else
		printf("Aborted.\n");
}

static int verb_abort(char **args)
{
	return verb_simple("abort", print_aborted);
}

/* The daemon runs elsewhere (cwd /): send it an absolute path to an existing file. */
static int local_file(const char *what, const char *path, char **ret)
{
	_cleanup_free_ char *abs = NULL;
	struct stat st;

	abs = realpath(path, NULL);
	if (!abs)
		return usage_error("Cannot use %s '%s': %m", what, path);
	if (stat(abs, &st) < 0)
		return usage_error("Cannot use %s '%s': %m", what, path);
	if (!S_ISREG(st.st_mode))
		return usage_error("Cannot use %s '%s': not a regular file", what, path);
	*ret = TAKE_PTR(abs);
	return EXIT_OK;
}

static int add_string(json_object *o, const char *key, const char *value)
{
	json_object *v = json_object_new_string(value);

	if (!v || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		log_error("Out of memory");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static int verb_prepare(char **args)
{
	_cleanup_(json_object_putp) json_object *params = NULL, *result = NULL;
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	bool progress = arg_progress && !arg_json;
	int r;

	if (arg_cmdline && arg_append)
		return usage_error("--cmdline and --append cannot be combined");

	r = local_file("kernel image", args[0], &kernel);
	if (r != EXIT_OK)
		return r;
	if (arg_initrd) {
		r = local_file("initrd", arg_initrd, &initrd);
		if (r != EXIT_OK)
			return r;
	}

	params = json_object_new_object();
	if (!params)
		return log_error("Out of memory"), EXIT_FAILED;
	r = add_string(params, "kernel", kernel);
	if (r == EXIT_OK && initrd)
		r = add_string(params, "initrd", initrd);
	if (r == EXIT_OK && arg_cmdline)
		r = add_string(params, "cmdline", arg_cmdline);
	if (r == EXIT_OK && arg_append)
		r = add_string(params, "append", arg_append);
	if (r == EXIT_OK && arg_timeout_ms > 0 &&
	    json_object_object_add(params, "timeout_ms", json_object_new_int64(arg_timeout_ms)) < 0)
		r = EXIT_FAILED;
	if (r != EXIT_OK)
		return r;

	/* No timeout of our own: the daemon's preserve deadline ends the wait. */
	r = call("prepare", params, progress, CLIENT_NO_TIMEOUT, &result);
	if (r != EXIT_OK)
		return r;
	if (arg_json)
		output_json(result);
	else
		output_prepared(result, kernel);
	return EXIT_OK;
}

/*
 * After the commit's reply the daemon calls reboot(). Success ends the
 * connection (and, on a real machine, this process with it); if the kernel
 * refuses, the daemon rolls back and says so in an "outcome" event.
 */
static int wait_for_kexec(Client *c)
{
	for (;;) {
		_cleanup_(json_object_putp) json_object *event = NULL;
		json_object *name, *outcome, *error, *code, *message;
		int r;

		r = client_read(c, 60 * USEC_PER_SEC, &event);
		if (r == -ECONNRESET)
			return EXIT_OK; /* the daemon went down with the old kernel */
		if (r == -ETIMEDOUT) {
			log_error("No word from liveupdated for 60 s after the commit; check liveupdatectl status");
			return EXIT_UNREACHABLE;
		}
		if (r < 0)
			return transport_error(r);
		if (!json_object_object_get_ex(event, "event", &name) ||
		    strcmp(json_object_get_string(name), "outcome") != 0 ||
		    !json_object_object_get_ex(event, "outcome", &outcome))
			continue;
		if (arg_json)
			output_json(event);
		if (strcmp(json_object_get_string(outcome), "success") == 0)
			return EXIT_OK;
		if (json_object_object_get_ex(event, "error", &error) &&
		    json_object_object_get_ex(error, "code", &code) &&
		    json_object_object_get_ex(error, "message", &message))
			log_error("The update was rolled back: %s (%s)", json_object_get_string(message),
				  json_object_get_string(code));
		else
			log_error("The update was rolled back");
		return EXIT_FAILED;
	}
}

static int verb_commit(char **args)
{
	_cleanup_(json_object_putp) json_object *params = NULL, *reply = NULL, *result = NULL;
	_cleanup_(client_freep) Client *c = NULL;
	bool progress = arg_progress && !arg_json;
	int r;

	if (arg_freeze_timeout_ms > 0) {
		params = json_object_new_object();
		if (!params ||
		    json_object_object_add(params, "freeze_timeout_ms",
					   json_object_new_int64(arg_freeze_timeout_ms)) < 0)
			return log_error("Out of memory"), EXIT_FAILED;
	}

	r = connect_daemon(&c);
	if (r != EXIT_OK)
		return r;
	/*
	 * Subscribe first: the commit's reply comes just before reboot(), and
	 * only the events after it tell whether the kernel refused the jump.
	 */
	r = client_call(c, "subscribe", NULL, false, 30 * USEC_PER_SEC, NULL, NULL, &reply);
	if (r < 0)
		return transport_error(r);
	r = reply_result(reply, &result);
	if (r != EXIT_OK)
		return r;
	json_object_put(reply);
	json_object_put(result);
	reply = result = NULL;

	r = client_call(c, "commit", params, progress, CLIENT_NO_TIMEOUT,
			progress ? print_progress : NULL, NULL, &reply);
	if (r == -ECONNRESET) {
		log_error("The connection to liveupdated was lost before the commit was confirmed: "
			  "the machine may be rebooting into the new kernel");
		return EXIT_UNREACHABLE;
	}
	if (r < 0)
		return transport_error(r);
	r = reply_result(reply, &result);
	if (r != EXIT_OK)
		return r;

	if (arg_json)
		output_json(result);
	else
		output_rebooting(result);
	return wait_for_kexec(c);
}

static int verb_release(char **args)
{
	_cleanup_(json_object_putp) json_object *params = NULL, *result = NULL;
	int r;

	if (!vm_id_valid(args[0]))
		return usage_error("'%s' is not a valid VM id", args[0]);

	params = json_object_new_object();
	if (!params)
		return log_error("Out of memory"), EXIT_FAILED;
	r = add_string(params, "vm_id", args[0]);
	if (r != EXIT_OK)
		return r;

	r = call("release", params, false, CALL_TIMEOUT_US, &result);
	if (r != EXIT_OK)
		return r;
	if (arg_json)
		output_json(result);
	else
		printf("Released %s.\n", args[0]);
	return EXIT_OK;
}

static void on_interrupt(int sig)
{
	interrupted = 1;
}

static int verb_events(char **args)
{
	_cleanup_(json_object_putp) json_object *reply = NULL, *result = NULL;
	_cleanup_(client_freep) Client *c = NULL;
	/* No SA_RESTART: the signal must wake poll() so that we exit cleanly. */
	struct sigaction sa = { .sa_handler = on_interrupt };
	int r;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = connect_daemon(&c);
	if (r != EXIT_OK)
		return r;
	r = client_call(c, "subscribe", NULL, false, CALL_TIMEOUT_US, NULL, NULL, &reply);
	if (r == -EINTR && interrupted)
		return EXIT_OK;
	if (r < 0)
		return transport_error(r);
	r = reply_result(reply, &result);
	if (r != EXIT_OK)
		return r;

	while (!interrupted) {
		_cleanup_(json_object_putp) json_object *m = NULL;

		r = client_read(c, CLIENT_NO_TIMEOUT, &m);
		if (r == -EINTR)
			continue;
		if (r == -ECONNRESET) {
			log_error("liveupdated closed the connection");
			return EXIT_UNREACHABLE;
		}
		if (r < 0)
			return transport_error(r);
		if (!json_object_object_get_ex(m, "event", NULL))
			continue;
		if (arg_json)
			output_json(m);
		else
			output_event(m, true);
	}
	return EXIT_OK;
}

/* Options of the commands; each verb says which it takes. */
enum {
	ARG_VERSION = 0x100,
	ARG_SOCKET,
	ARG_JSON,
	ARG_NO_PROGRESS,
	ARG_INITRD,
	ARG_CMDLINE,
	ARG_APPEND,
	ARG_TIMEOUT,
	ARG_FREEZE_TIMEOUT,
};

#define OPT(a) (1U << ((a) - ARG_VERSION))
#define OPTS_ANY (OPT(ARG_SOCKET) | OPT(ARG_JSON) | OPT(ARG_NO_PROGRESS))

typedef struct Verb {
	const char *name;
	int n_args;
	unsigned options;
	int (*run)(char **args);
} Verb;

static const Verb verbs[] = {
	{ "status", 0, OPTS_ANY, verb_status },
	{ "list", 0, OPTS_ANY, verb_list },
	{ "prepare", 1,
	  OPTS_ANY | OPT(ARG_INITRD) | OPT(ARG_CMDLINE) | OPT(ARG_APPEND) | OPT(ARG_TIMEOUT),
	  verb_prepare },
	{ "commit", 0, OPTS_ANY | OPT(ARG_FREEZE_TIMEOUT), verb_commit },
	{ "abort", 0, OPTS_ANY, verb_abort },
	{ "report", 0, OPTS_ANY, verb_report },
	{ "release", 1, OPTS_ANY, verb_release },
	{ "events", 0, OPTS_ANY, verb_events },
};

static int parse_uint32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

/* The option getopt just refused: a short one is in optopt, a long one in argv. */
static const char *bad_option(char **argv)
{
	static char buf[3];

	if (optopt > 0 && optopt < 0x100) {
		snprintf(buf, sizeof(buf), "-%c", optopt);
		return buf;
	}
	return argv[optind - 1];
}

/* Options valid anywhere; returns 1 if handled, 0 if not one of them. */
static int parse_common_option(int c)
{
	switch (c) {
	case ARG_SOCKET:
		if (!*optarg)
			return -EINVAL;
		arg_socket = optarg;
		return 1;
	case ARG_JSON:
		arg_json = true;
		return 1;
	case ARG_NO_PROGRESS:
		arg_progress = false;
		return 1;
	default:
		return 0;
	}
}

/* Accepted before and after the command. */
#define COMMON_OPTIONS                                                  \
	{ "socket", required_argument, NULL, ARG_SOCKET },              \
	{ "json", no_argument, NULL, ARG_JSON },                        \
	{ "no-progress", no_argument, NULL, ARG_NO_PROGRESS }

/* Returns < 0 after a usage error, 0 when done (--help), > 0 to run the verb on *ret_args. */
static int parse_command(const Verb *verb, int argc, char **argv, char ***ret_args)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		COMMON_OPTIONS,
		{ "initrd", required_argument, NULL, ARG_INITRD },
		{ "cmdline", required_argument, NULL, ARG_CMDLINE },
		{ "append", required_argument, NULL, ARG_APPEND },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "freeze-timeout", required_argument, NULL, ARG_FREEZE_TIMEOUT },
		{},
	};
	uint32_t v;
	int c, r, idx;

	/* Permuting, so that "prepare KERNEL --initrd FILE" reads naturally; 0 restarts getopt. */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", options, &idx)) >= 0) {
		if (c == '?')
			return -usage_error("Invalid option '%s' for '%s'", bad_option(argv),
					    verb->name);
		if (c == ':')
			return -usage_error("Option '%s' needs an argument", bad_option(argv));
		if (c == 'h') {
			help();
			return 0;
		}
		if (c >= ARG_VERSION && !(verb->options & OPT(c)))
			return -usage_error("Option '--%s' is not valid for '%s'",
					    options[idx].name, verb->name);
		r = parse_common_option(c);
		if (r < 0)
			return -usage_error("--socket needs a path");
		if (r > 0)
			continue;

		switch (c) {
		case ARG_INITRD:
			arg_initrd = optarg;
			break;
		case ARG_CMDLINE:
			arg_cmdline = optarg;
			break;
		case ARG_APPEND:
			arg_append = optarg;
			break;
		case ARG_TIMEOUT:
			if (parse_uint32(optarg, 1, PREPARE_TIMEOUT_S_MAX, &v) < 0)
				return -usage_error("--timeout takes seconds, 1-%d: '%s'",
						   PREPARE_TIMEOUT_S_MAX, optarg);
			arg_timeout_ms = v * 1000;
			break;
		case ARG_FREEZE_TIMEOUT:
			if (parse_uint32(optarg, 1, FREEZE_TIMEOUT_MS_MAX, &arg_freeze_timeout_ms) <
			    0)
				return -usage_error(
				    "--freeze-timeout takes milliseconds, 1-%d: '%s'",
				    FREEZE_TIMEOUT_MS_MAX, optarg);
			break;
		default:
			return -usage_error("Invalid option for '%s'", verb->name);
		}
	}

	if (argc - optind != verb->n_args)
		return -usage_error("'%s' takes %s", verb->name,
				   verb->n_args == 0 ? "no arguments"
				   : strcmp(verb->name, "prepare") == 0 ? "one argument: KERNEL"
									: "one argument: VM_ID");
	*ret_args = argv + optind;
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		COMMON_OPTIONS,
		{},
	};
	const Verb *verb = NULL;
	char **args = NULL;
	int c, r;

	log_set_prefix(program_invocation_short_name);

	/* "+": stop at the command, whose options are its own. */
	opterr = 0; /* our own messages, which name the command */
	while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_OK;
		case ARG_VERSION:
			printf("liveupdatectl %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		case '?':
			return usage_error("Invalid option '%s'", bad_option(argv));
		case ':':
			return usage_error("Option '%s' needs an argument", bad_option(argv));
		default:
			if (parse_common_option(c) < 0)
				return usage_error("--socket needs a path");
			break;
		}
	}

	if (optind >= argc)
		return usage_error("Missing command");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(verbs[i].name, argv[optind]) == 0)
			verb = &verbs[i];
	if (!verb)
		return usage_error("Unknown command '%s'", argv[optind]);

	r = parse_command(verb, argc - optind, argv + optind, &args);
	if (r <= 0)
		return r < 0 ? EXIT_USAGE : EXIT_OK;

	return verb->run(args);
}
