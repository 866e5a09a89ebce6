/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fleet JSON API: the wire format, its stable error codes, and the
 * checking of every request against a table of fields (name, JSON type,
 * mandatory). Pure functions over json-c objects, no I/O: the daemon's
 * control server and liveupdatectl both use it, and the fuzzers can too.
 *
 * Transport: AF_UNIX SOCK_STREAM, one JSON object per line (\n), UTF-8.
 *   request   {"api":1,"id":ANY,"method":"prepare","params":{...}}
 *   success   {"api":1,"id":ANY,"ok":true,"result":{...}}
 *   failure   {"api":1,"id":ANY,"ok":false,
 *              "error":{"code":"bad-state","message":"...","errno":"EBUSY"}}
 *   event     {"api":1,"event":"state",...}   (after "subscribe", or before
 *             the reply of a request that set "progress":true)
 * "id" is optional and echoed verbatim; "params" is optional when a method
 * has no mandatory parameter. Unknown members anywhere are refused.
 */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define CONTROL_API_VERSION 1
#define CONTROL_SOCKET_NAME "control.sock"
#define CONTROL_REQUEST_MAX (64 * 1024) /* bytes, newline included */

/* Stable: the strings are the API; never renumber or rename. */
typedef enum ControlError {
	CONTROL_ERROR_INVALID_JSON,        /* "invalid-json": not a JSON object */
	CONTROL_ERROR_INVALID_REQUEST,     /* "invalid-request": bad/missing/unknown member */
	CONTROL_ERROR_UNSUPPORTED_VERSION, /* "unsupported-version" */
	CONTROL_ERROR_UNKNOWN_METHOD,      /* "unknown-method" */
	CONTROL_ERROR_TOO_LARGE,           /* "too-large": request over CONTROL_REQUEST_MAX */
	CONTROL_ERROR_PERMISSION_DENIED,   /* "permission-denied" */
	CONTROL_ERROR_TOO_MANY_CLIENTS,    /* "too-many-clients" */
	CONTROL_ERROR_BAD_STATE,           /* "bad-state": not possible in the current state */
	CONTROL_ERROR_KERNEL_IMAGE,        /* "kernel-image": image/initrd unusable */
	CONTROL_ERROR_KEXEC_LOAD,          /* "kexec-load-failed" */
	CONTROL_ERROR_LUO_UNAVAILABLE,     /* "luo-unavailable": /dev/liveupdate unusable */
	CONTROL_ERROR_VMM_FAILED,          /* "vmm-failed": a VMM failed, died or timed out */
	CONTROL_ERROR_VMM_NOT_FOUND,       /* "vmm-not-found" */
	CONTROL_ERROR_LIMIT_EXCEEDED,      /* "limit-exceeded" */
	CONTROL_ERROR_REBOOT_FAILED,       /* "reboot-failed": kernel refused the kexec */
	CONTROL_ERROR_ABORTED,             /* "aborted": the operator aborted the update */
	CONTROL_ERROR_DEVICE_NOT_PRESERVABLE, /* "device-not-preservable": a passed-through device would lose its state */
	CONTROL_ERROR_INTERNAL,            /* "internal" */
	_CONTROL_ERROR_MAX,
	_CONTROL_ERROR_INVALID = -EINVAL,
} ControlError;

const char *control_error_to_string(ControlError e);
ControlError control_error_from_string(const char *s);

typedef enum ControlMethod {
	CONTROL_METHOD_STATUS,    /* "status" */
	CONTROL_METHOD_LIST,      /* "list": registered VMMs */
	CONTROL_METHOD_PREPARE,   /* "prepare" */
	CONTROL_METHOD_COMMIT,    /* "commit" */
	CONTROL_METHOD_ABORT,     /* "abort" */
	CONTROL_METHOD_REPORT,    /* "report": the last update's report */
	CONTROL_METHOD_RELEASE,   /* "release": free a VM that never came back */
	CONTROL_METHOD_SUBSCRIBE, /* "subscribe": stream events */
	_CONTROL_METHOD_MAX,
	_CONTROL_METHOD_INVALID = -EINVAL,
} ControlMethod;

const char *control_method_to_string(ControlMethod m);
ControlMethod control_method_from_string(const char *s);

/* A request as parsed; holds references, release with control_request_done(). */
typedef struct ControlRequest {
	ControlMethod method;
	json_object *id;     /* may be NULL */
	json_object *params; /* may be NULL */
	bool progress;       /* "progress":true at the top level: stream events until the reply */
} ControlRequest;

void control_request_done(ControlRequest *req);

/*
 * Parse one line (without its '\n'). On failure returns a negative errno,
 * fills *ret_error and *ret_message (static or malloc'd into *ret_message,
 * always malloc'd: caller frees) and, if the id could be read, req->id so
 * the error reply can echo it.
 */
int control_request_parse(const char *line, size_t len, ControlRequest *req,
			  ControlError *ret_error, char **ret_message);

typedef struct PrepareParams {
	char *kernel;    /* mandatory: path of the next kernel image */
	char *initrd;    /* optional */
	char *cmdline;   /* optional: replaces the default command line */
	char *append;    /* optional: appended to the (default) command line */
	uint32_t timeout_ms; /* VMMs' preserve deadline; 0: the daemon's default */
} PrepareParams;

typedef struct CommitParams {
	uint32_t freeze_timeout_ms; /* 0: the daemon's default */
} CommitParams;

typedef struct ReleaseParams {
	char *vm_id; /* mandatory, must satisfy vm_id_valid() */
} ReleaseParams;

/* Each checks params (NULL allowed where nothing is mandatory) against its field table. */
int control_parse_prepare(json_object *params, PrepareParams *ret, char **ret_message);
int control_parse_commit(json_object *params, CommitParams *ret, char **ret_message);
int control_parse_release(json_object *params, ReleaseParams *ret, char **ret_message);
/* For methods without parameters: params must be NULL or {}. */
int control_parse_no_params(json_object *params, char **ret_message);
void prepare_params_done(PrepareParams *p);
void release_params_done(ReleaseParams *p);

/*
 * Build replies and events (new references). control_reply_ok() takes over
 * result (NULL becomes {}); id is borrowed. error is a negative errno or 0.
 */
json_object *control_reply_ok(json_object *id, json_object *result);
json_object *control_reply_error(json_object *id, ControlError code, int error, const char *message);
json_object *control_event_new(const char *event_name);

/* Serialize as one line with '\n' (malloc'd). */
char *control_to_line(json_object *o, size_t *ret_len);
