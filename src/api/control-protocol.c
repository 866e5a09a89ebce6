/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every request is checked against a table of fields: the member's name, its
 * JSON type and whether it is mandatory, plus how to store it. A member the
 * table does not know, a member of the wrong type and a missing mandatory
 * member are all refused with a message that names the member, so a typo in
 * fleet automation fails loudly instead of being ignored.
 *
 * json-c is lenient in ways the API must not be, so parsing adds:
 *  - a tokener with a small depth and strict mode: trailing garbage, trailing
 *    commas and deep nesting are refused, and strings must be valid UTF-8;
 *  - a scan for "\u0000": json-c truncates object keys at an escaped NUL
 *    ("kernel\u0000x" would become "kernel"), and no member of the API may
 *    hold one;
 *  - a check that "id" holds no NaN or Infinity (json-c accepts them), since
 *    "id" is echoed and the reply must be JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <liveupdate/vmm-protocol.h>

#include "control-protocol.h"
#include "macro.h"
#include "string-util.h"

/* Request, params, and a few levels for a structured "id". */
#define CONTROL_JSON_DEPTH_MAX 8
/* Includes the NUL, like PATH_MAX: the kernel's COMMAND_LINE_SIZE on most arches. */
#define CONTROL_CMDLINE_MAX 4096
#define CONTROL_TIMEOUT_MS_MAX 3600000 /* one hour */
/* Member names quoted in messages are cut here; a request may hold long ones. */
#define CONTROL_NAME_QUOTE_MAX 64

DEFINE_FREEP(json_object, json_object_put)
DEFINE_FREEP(struct json_tokener, json_tokener_free)

static const char *const control_error_table[_CONTROL_ERROR_MAX] = {
	[CONTROL_ERROR_INVALID_JSON] = "invalid-json",
	[CONTROL_ERROR_INVALID_REQUEST] = "invalid-request",
	[CONTROL_ERROR_UNSUPPORTED_VERSION] = "unsupported-version",
	[CONTROL_ERROR_UNKNOWN_METHOD] = "unknown-method",
	[CONTROL_ERROR_TOO_LARGE] = "too-large",
	[CONTROL_ERROR_PERMISSION_DENIED] = "permission-denied",
	[CONTROL_ERROR_TOO_MANY_CLIENTS] = "too-many-clients",
	[CONTROL_ERROR_BAD_STATE] = "bad-state",
	[CONTROL_ERROR_KERNEL_IMAGE] = "kernel-image",
	[CONTROL_ERROR_KEXEC_LOAD] = "kexec-load-failed",
	[CONTROL_ERROR_LUO_UNAVAILABLE] = "luo-unavailable",
	[CONTROL_ERROR_VMM_FAILED] = "vmm-failed",
	[CONTROL_ERROR_VMM_NOT_FOUND] = "vmm-not-found",
	[CONTROL_ERROR_LIMIT_EXCEEDED] = "limit-exceeded",
	[CONTROL_ERROR_REBOOT_FAILED] = "reboot-failed",
	[CONTROL_ERROR_ABORTED] = "aborted",
	[CONTROL_ERROR_DEVICE_NOT_PRESERVABLE] = "device-not-preservable",
	[CONTROL_ERROR_INTERNAL] = "internal",
};

static const char *const control_method_table[_CONTROL_METHOD_MAX] = {
	[CONTROL_METHOD_STATUS] = "status",   [CONTROL_METHOD_LIST] = "list",
	[CONTROL_METHOD_PREPARE] = "prepare", [CONTROL_METHOD_COMMIT] = "commit",
	[CONTROL_METHOD_ABORT] = "abort",     [CONTROL_METHOD_REPORT] = "report",
	[CONTROL_METHOD_RELEASE] = "release", [CONTROL_METHOD_SUBSCRIBE] = "subscribe",
};

const char *control_error_to_string(ControlError e)
{
	if (e < 0 || e >= _CONTROL_ERROR_MAX)
		return NULL;
	return control_error_table[e];
}

ControlError control_error_from_string(const char *s)
{
	return string_table_lookup(control_error_table, ARRAY_SIZE(control_error_table), s);
}

const char *control_method_to_string(ControlMethod m)
{
	if (m < 0 || m >= _CONTROL_METHOD_MAX)
		return NULL;
	return control_method_table[m];
}

ControlMethod control_method_from_string(const char *s)
{
	return string_table_lookup(control_method_table, ARRAY_SIZE(control_method_table), s);
}

/* Sets *ret_message; returns -EINVAL, or -ENOMEM when even that failed. */
_printf_(2, 3) static int fail(char **ret_message, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(ret_message, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*ret_message = NULL;
		return -ENOMEM;
	}
	return -EINVAL;
}

/*
 * The field tables. The dispatch callback stores a checked value at offset
 * in the caller's struct; NULL only checks the type (the caller reads the
 * member itself). type json_type_null stands for "any JSON value".
 */
typedef struct ControlField ControlField;
typedef int (*control_dispatch_t)(const ControlField *f, const char *prefix, json_object *v,
				  void *p, char **ret_message);

struct ControlField {
	const char *name;
	json_type type;
	bool mandatory;
	control_dispatch_t dispatch;
	size_t offset;
	int64_t min, max; /* string length (excluding the NUL) or integer range */
};

static const char *json_type_label(json_type t)
{
	switch (t) {
	case json_type_boolean:
		return "a boolean";
	case json_type_int:
		return "an integer";
	case json_type_string:
		return "a string";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_double:
		return "a number";
	default:
		return "JSON";
	}
}

/* A string without NULs whose length is in [min, max]; returns it borrowed. */
static int check_string(const ControlField *f, const char *prefix, json_object *v,
			const char **ret, char **ret_message)
{
	const char *s = json_object_get_string(v);
	int len = json_object_get_string_len(v);

	if ((size_t)len != strlen(s))
		return fail(ret_message, "Member '%s%s' contains a NUL character", prefix, f->name);
	if (len < f->min)
		return fail(ret_message, "Member '%s%s' must not be empty", prefix, f->name);
	if (len > f->max)
		return fail(ret_message, "Member '%s%s' is longer than %" PRId64 " bytes", prefix,
			    f->name, f->max);
	*ret = s;
	return 0;
}

static int store_string(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

static int dispatch_string(const ControlField *f, const char *prefix, json_object *v, void *p,
			   char **ret_message)
{
	const char *s = NULL;
	int r;

	r = check_string(f, prefix, v, &s, ret_message);
	if (r < 0)
		return r;
	return store_string(p, s);
}

/* The daemon's cwd is meaningless to the client: paths must be absolute. */
static int dispatch_path(const ControlField *f, const char *prefix, json_object *v, void *p,
			 char **ret_message)
{
	const char *s = NULL;
	int r;

	r = check_string(f, prefix, v, &s, ret_message);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return fail(ret_message, "Member '%s%s' must be an absolute path", prefix, f->name);
	return store_string(p, s);
}

static int dispatch_vm_id(const ControlField *f, const char *prefix, json_object *v, void *p,
			  char **ret_message)
{
	const char *s = NULL;
	int r;

	r = check_string(f, prefix, v, &s, ret_message);
	if (r < 0)
		return r;
	if (!vm_id_valid(s))
		return fail(
		    ret_message,
		    "Member '%s%s' is not a valid VM id (1-%d characters of [A-Za-z0-9._-], "
		    "not starting with '.' or '-')",
		    prefix, f->name, LU_VM_ID_MAX);
	return store_string(p, s);
}

static int dispatch_uint32(const ControlField *f, const char *prefix, json_object *v, void *p,
			   char **ret_message)
{
	/* json-c saturates what does not fit in int64: still out of range. */
	int64_t i = json_object_get_int64(v);

	if (i < f->min || i > f->max)
		return fail(ret_message, "Member '%s%s' is out of range (%" PRId64 "..%" PRId64 ")",
			    prefix, f->name, f->min, f->max);
	*(uint32_t *)p = (uint32_t)i;
	return 0;
}

static int dispatch_bool(const ControlField *f, const char *prefix, json_object *v, void *p,
			 char **ret_message)
{
	*(bool *)p = json_object_get_boolean(v);
	return 0;
}

static int dispatch_object_ref(const ControlField *f, const char *prefix, json_object *v, void *p,
			       char **ret_message)
{
	json_object **dst = p;

	json_object_put(*dst);
	*dst = json_object_get(v);
	return 0;
}

static const ControlField *field_find(const ControlField *fields, const char *name)
{
	for (const ControlField *f = fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/*
 * Check every member of o against fields (terminated by a NULL name) and
 * dispatch each into userdata. prefix ("params.") names nested members in
 * messages.
 */
static int control_dispatch(json_object *o, const ControlField *fields, const char *prefix,
			    void *userdata, char **ret_message)
{
	int r;

	json_object_object_foreach(o, key, v)
	{
		const ControlField *f = field_find(fields, key);

		if (!f)
			return fail(ret_message, "Unknown member '%s%.*s'", prefix,
				    CONTROL_NAME_QUOTE_MAX, key);
		if (f->type != json_type_null && !json_object_is_type(v, f->type))
			return fail(ret_message, "Member '%s%s' must be %s", prefix, f->name,
				    json_type_label(f->type));
		if (!f->dispatch)
			continue;
		r = f->dispatch(f, prefix, v, (char *)userdata + f->offset, ret_message);
		if (r < 0)
			return r;
	}

	for (const ControlField *f = fields; f->name; f++)
		if (f->mandatory && !json_object_object_get_ex(o, f->name, NULL))
			return fail(ret_message, "Missing member '%s%s'", prefix, f->name);

	return 0;
}

static int control_dispatch_params(json_object *params, const ControlField *fields,
				   void *userdata, char **ret_message)
{
	_cleanup_(json_object_putp) json_object *empty = NULL;

	*ret_message = NULL;

	/* Absent params are checked as {} so that mandatory members are reported. */
	if (!params) {
		empty = json_object_new_object();
		if (!empty)
			return -ENOMEM;
		params = empty;
	}
	if (!json_object_is_type(params, json_type_object))
		return fail(ret_message, "Member 'params' must be an object");

	return control_dispatch(params, fields, "params.", userdata, ret_message);
}

/*
 * What json-c lets through: single-quoted strings (even in strict mode), and
 * the escape \u0000. Backslashes and quotes are tracked, so "\\u0000" and
 * "it's" are text. Returns 0, or -EINVAL with *ret_error and *ret_message set.
 */
static int json_text_check(const char *s, size_t len, ControlError *ret_error, char **ret_message)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			if (s[i] == '"')
				in_string = true;
			else if (s[i] == '\'') {
				*ret_error = CONTROL_ERROR_INVALID_JSON;
				return fail(ret_message, "Invalid JSON at offset %zu: single quote",
					    i);
			}
			continue;
		}
		if (s[i] == '"') {
			in_string = false;
		} else if (s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 6 <= len && memcmp(s + i + 2, "0000", 4) == 0) {
				*ret_error = CONTROL_ERROR_INVALID_REQUEST;
				return fail(ret_message,
					    "Request contains an escaped NUL character "
					    "(\\u0000) at offset %zu",
					    i);
			}
			i++; /* the escaped character */
		}
	}
	return 0;
}

/* NaN and Infinity parse, but cannot be written back as JSON. */
static bool json_value_is_finite(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!json_value_is_finite(json_object_array_get_idx(v, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(v, key, child)
		{
			(void)key;
			if (!json_value_is_finite(child))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

void control_request_done(ControlRequest *req)
{
	if (!req)
		return;
	json_object_put(req->id);
	json_object_put(req->params);
	*req = (ControlRequest){ .method = _CONTROL_METHOD_INVALID };
}

/* The top-level table; "api" and "method" are read by hand for their own error codes. */
static const ControlField request_fields[] = {
	{ "api", json_type_int, true },
	{ "method", json_type_string, true },
	{ "id", json_type_null, false },
	{ "params", json_type_object, false, dispatch_object_ref,
	  offsetof(ControlRequest, params) },
	{ "progress", json_type_boolean, false, dispatch_bool, offsetof(ControlRequest, progress) },
	{},
};

static int request_parse(json_object *o, ControlRequest *req, ControlError *ret_error,
			 char **ret_message)
{
	json_object *v;
	const char *method;
	int r;

	if (json_object_object_get_ex(o, "id", &v)) {
		if (!json_value_is_finite(v)) {
			*ret_error = CONTROL_ERROR_INVALID_REQUEST;
			return fail(ret_message, "Member 'id' holds a number that is not finite");
		}
		req->id = json_object_get(v);
	}

	/* Before anything else: a newer client's request may hold members we do not know. */
	if (json_object_object_get_ex(o, "api", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) != CONTROL_API_VERSION) {
		*ret_error = CONTROL_ERROR_UNSUPPORTED_VERSION;
		r = fail(ret_message, "Unsupported API version %" PRId64 ", this daemon speaks %d",
			 json_object_get_int64(v), CONTROL_API_VERSION);
		return r == -EINVAL ? -EPROTONOSUPPORT : r;
	}

	*ret_error = CONTROL_ERROR_INVALID_REQUEST;
	r = control_dispatch(o, request_fields, "", req, ret_message);
	if (r < 0)
		return r;

	json_object_object_get_ex(o, "method", &v);
	method = json_object_get_string(v);
	req->method = control_method_from_string(method);
	if (req->method < 0 || strlen(method) != (size_t)json_object_get_string_len(v)) {
		req->method = _CONTROL_METHOD_INVALID;
		*ret_error = CONTROL_ERROR_UNKNOWN_METHOD;
		return fail(ret_message, "Unknown method '%.*s'", CONTROL_NAME_QUOTE_MAX, method);
	}
	return 0;
}

int control_request_parse(const char *line, size_t len, ControlRequest *req,
			  ControlError *ret_error, char **ret_message)
{
	_cleanup_(json_tokener_freep) struct json_tokener *tok = NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	int r;

	*req = (ControlRequest){ .method = _CONTROL_METHOD_INVALID };
	*ret_message = NULL;
	*ret_error = CONTROL_ERROR_INTERNAL;

	if (len >= CONTROL_REQUEST_MAX) {
		*ret_error = CONTROL_ERROR_TOO_LARGE;
		r = fail(ret_message, "Request longer than %d bytes", CONTROL_REQUEST_MAX - 1);
		return r == -EINVAL ? -EMSGSIZE : r;
	}

	*ret_error = CONTROL_ERROR_INVALID_JSON;
	if (memchr(line, 0, len))
		return fail(ret_message, "Invalid JSON: NUL byte in the request");

	tok = json_tokener_new_ex(CONTROL_JSON_DEPTH_MAX);
	if (!tok)
		goto oom;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

	o = json_tokener_parse_ex(tok, line, (int)len);
	/* A bare number at the end may go on: the NUL terminator ends it. */
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1);
	if (!o) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		/* "continue" means the text ended inside a value; null is not an object either. */
		if (e == json_tokener_continue)
			return fail(ret_message, "Invalid JSON: unexpected end of request");
		if (e == json_tokener_success)
			return fail(ret_message, "Request is not a JSON object");
		return fail(ret_message, "Invalid JSON at offset %zu: %s",
			    json_tokener_get_parse_end(tok), json_tokener_error_desc(e));
	}
	if (!json_object_is_type(o, json_type_object))
		return fail(ret_message, "Request is not a JSON object");
	/* Strict mode refuses trailing characters except whitespace; be sure of it. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
		if (!strchr(" \t\r\n", line[i]))
			return fail(ret_message, "Invalid JSON: trailing characters at offset %zu",
				    i);

	r = json_text_check(line, len, ret_error, ret_message);
	if (r == -ENOMEM)
		goto oom;
	if (r < 0) {
		/* Still echo the id of a request that is JSON. */
		json_object *id;

		if (*ret_error == CONTROL_ERROR_INVALID_REQUEST &&
		    json_object_object_get_ex(o, "id", &id) && json_value_is_finite(id))
			req->id = json_object_get(id);
		return r;
	}

	r = request_parse(o, req, ret_error, ret_message);
	if (r < 0) {
		/* Keep the id for the error reply, drop the rest. */
		json_object *id = TAKE_PTR(req->id);

		control_request_done(req);
		req->id = id;
		if (r == -ENOMEM)
			goto oom;
		return r;
	}
	return 0;

oom:
	*ret_error = CONTROL_ERROR_INTERNAL;
	free(*ret_message);
	*ret_message = strdup("Out of memory");
	return -ENOMEM;
}

static const ControlField prepare_fields[] = {
	{ "kernel", json_type_string, true, dispatch_path, offsetof(PrepareParams, kernel), 1,
	  PATH_MAX - 1 },
	{ "initrd", json_type_string, false, dispatch_path, offsetof(PrepareParams, initrd), 1,
	  PATH_MAX - 1 },
	{ "cmdline", json_type_string, false, dispatch_string, offsetof(PrepareParams, cmdline),
	  0, CONTROL_CMDLINE_MAX - 1 },
	{ "append", json_type_string, false, dispatch_string, offsetof(PrepareParams, append), 0,
	  CONTROL_CMDLINE_MAX - 1 },
	{ "timeout_ms", json_type_int, false, dispatch_uint32, offsetof(PrepareParams, timeout_ms),
	  1, CONTROL_TIMEOUT_MS_MAX },
	{},
};

static const ControlField commit_fields[] = {
	{ "freeze_timeout_ms", json_type_int, false, dispatch_uint32,
	  offsetof(CommitParams, freeze_timeout_ms), 1, CONTROL_TIMEOUT_MS_MAX },
	{},
};

static const ControlField release_fields[] = {
	{ "vm_id", json_type_string, true, dispatch_vm_id, offsetof(ReleaseParams, vm_id), 1,
	  LU_VM_ID_MAX },
	{},
};

static const ControlField no_fields[] = {
	{},
};

void prepare_params_done(PrepareParams *p)
{
	if (!p)
		return;
	free(p->kernel);
	free(p->initrd);
	free(p->cmdline);
	free(p->append);
	*p = (PrepareParams){};
}

void release_params_done(ReleaseParams *p)
{
	if (!p)
		return;
	free(p->vm_id);
	*p = (ReleaseParams){};
}

int control_parse_prepare(json_object *params, PrepareParams *ret, char **ret_message)
{
	int r;

	*ret = (PrepareParams){};
	r = control_dispatch_params(params, prepare_fields, ret, ret_message);
	if (r < 0)
		prepare_params_done(ret);
	return r;
}

int control_parse_commit(json_object *params, CommitParams *ret, char **ret_message)
{
	int r;

	*ret = (CommitParams){};
	r = control_dispatch_params(params, commit_fields, ret, ret_message);
	if (r < 0)
		*ret = (CommitParams){};
	return r;
}

int control_parse_release(json_object *params, ReleaseParams *ret, char **ret_message)
{
	int r;

	*ret = (ReleaseParams){};
	r = control_dispatch_params(params, release_fields, ret, ret_message);
	if (r < 0)
		release_params_done(ret);
	return r;
}

int control_parse_no_params(json_object *params, char **ret_message)
{
	return control_dispatch_params(params, no_fields, NULL, ret_message);
}

/* {"api":1,"id":ID} with id omitted when NULL; members keep this order on the wire. */
static json_object *message_new(json_object *id)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(o, "api", json_object_new_int(CONTROL_API_VERSION)) < 0)
		return NULL;
	if (id && json_object_object_add(o, "id", json_object_get(id)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/*
 * control_reply_ok() - a success reply. id is borrowed (a reference is taken);
 * result is consumed, like json_object_object_add() does, and NULL stands for
 * {}. Returns NULL when out of memory.
 */
json_object *control_reply_ok(json_object *id, json_object *result)
{
	_cleanup_(json_object_putp) json_object *r = result;
	_cleanup_(json_object_putp) json_object *o = message_new(id);

	if (!o)
		return NULL;
	if (!r) {
		r = json_object_new_object();
		if (!r)
			return NULL;
	}
	if (json_object_object_add(o, "ok", json_object_new_boolean(true)) < 0)
		return NULL;
	if (json_object_object_add(o, "result", TAKE_PTR(r)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/*
 * control_reply_error() - a failure reply. id is borrowed; "errno" is added
 * when error is non-zero and has a name; a NULL message falls back to
 * strerror() or the code itself. Returns NULL when out of memory.
 */
json_object *control_reply_error(json_object *id, ControlError code, int error, const char *message)
{
	_cleanup_(json_object_putp) json_object *o = message_new(id);
	_cleanup_(json_object_putp) json_object *e = json_object_new_object();
	const char *code_s = control_error_to_string(code) ?: "internal";
	const char *errno_s = error != 0 ? errno_to_name(error) : NULL;

	if (!o || !e)
		return NULL;
	if (!message)
		message = error != 0 ? strerror(error < 0 ? -error : error) : code_s;

	if (json_object_object_add(e, "code", json_object_new_string(code_s)) < 0 ||
	    json_object_object_add(e, "message", json_object_new_string(message)) < 0)
		return NULL;
	if (errno_s && json_object_object_add(e, "errno", json_object_new_string(errno_s)) < 0)
		return NULL;

	if (json_object_object_add(o, "ok", json_object_new_boolean(false)) < 0 ||
	    json_object_object_add(o, "error", TAKE_PTR(e)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/* {"api":1,"event":NAME}; the caller adds the event's members. */
json_object *control_event_new(const char *event_name)
{
	_cleanup_(json_object_putp) json_object *o = message_new(NULL);

	if (!o)
		return NULL;
	if (json_object_object_add(o, "event", json_object_new_string(event_name)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

char *control_to_line(json_object *o, size_t *ret_len)
{
	const char *s;
	size_t len;
	char *line;

	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	if (!s)
		return NULL;
	line = malloc(len + 2);
	if (!line)
		return NULL;
	memcpy(line, s, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	if (ret_len)
		*ret_len = len + 1;
	return line;
}
