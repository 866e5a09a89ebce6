/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <liveupdate/vmm-protocol.h>

#include "control-protocol.h"
#include "macro.h"

DEFINE_FREEP(json_object, json_object_put)

/* Parse a request that must succeed; the caller releases it. */
static void parse_ok(const char *line, ControlRequest *req)
{
	_cleanup_free_ char *msg = NULL;
	ControlError code = _CONTROL_ERROR_INVALID;
	int r;

	r = control_request_parse(line, strlen(line), req, &code, &msg);
	if (r < 0)
		fail_msg("'%s' refused: %s", line, msg ?: "(no message)");
	assert_null(msg);
}

/*
 * Parse a request that must fail with code, and whose message must contain
 * needle. Returns the request (only its id may be set) for further checks.
 */
static void parse_fail_req(const char *line, size_t len, ControlError expected,
			   const char *needle, ControlRequest *req)
{
	_cleanup_free_ char *msg = NULL;
	ControlError code = _CONTROL_ERROR_INVALID;
	int r;

	r = control_request_parse(line, len, req, &code, &msg);
	if (r >= 0)
		fail_msg("'%s' accepted", line);
	assert_int_equal(code, expected);
	assert_non_null(msg);
	if (needle && !strstr(msg, needle))
		fail_msg("message '%s' does not contain '%s'", msg, needle);
	assert_null(req->params);
	assert_int_equal(req->method, _CONTROL_METHOD_INVALID);
}

static void parse_fail(const char *line, ControlError expected, const char *needle)
{
	ControlRequest req;

	parse_fail_req(line, strlen(line), expected, needle, &req);
	control_request_done(&req);
}

static json_object *json(const char *s)
{
	json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_string_tables(void **state)
{
	for (int i = 0; i < _CONTROL_ERROR_MAX; i++) {
		const char *s = control_error_to_string(i);

		assert_non_null(s);
		assert_int_equal(control_error_from_string(s), i);
	}
	for (int i = 0; i < _CONTROL_METHOD_MAX; i++) {
		const char *s = control_method_to_string(i);

		assert_non_null(s);
		assert_int_equal(control_method_from_string(s), i);
	}

	/* The strings are the API: pin them. */
	assert_string_equal(control_error_to_string(CONTROL_ERROR_INVALID_JSON), "invalid-json");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_INVALID_REQUEST),
			    "invalid-request");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_UNSUPPORTED_VERSION),
			    "unsupported-version");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_UNKNOWN_METHOD),
			    "unknown-method");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_TOO_LARGE), "too-large");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_PERMISSION_DENIED),
			    "permission-denied");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_TOO_MANY_CLIENTS),
			    "too-many-clients");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_BAD_STATE), "bad-state");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_KERNEL_IMAGE), "kernel-image");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_KEXEC_LOAD), "kexec-load-failed");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_LUO_UNAVAILABLE),
			    "luo-unavailable");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_VMM_FAILED), "vmm-failed");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_VMM_NOT_FOUND), "vmm-not-found");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_LIMIT_EXCEEDED),
			    "limit-exceeded");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_REBOOT_FAILED), "reboot-failed");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_ABORTED), "aborted");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_DEVICE_NOT_PRESERVABLE),
			    "device-not-preservable");
	assert_string_equal(control_error_to_string(CONTROL_ERROR_INTERNAL), "internal");

	assert_string_equal(control_method_to_string(CONTROL_METHOD_STATUS), "status");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_LIST), "list");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_PREPARE), "prepare");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_COMMIT), "commit");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_ABORT), "abort");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_REPORT), "report");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_RELEASE), "release");
	assert_string_equal(control_method_to_string(CONTROL_METHOD_SUBSCRIBE), "subscribe");

	assert_null(control_error_to_string(_CONTROL_ERROR_MAX));
	assert_null(control_error_to_string(_CONTROL_ERROR_INVALID));
	assert_null(control_method_to_string(_CONTROL_METHOD_MAX));
	assert_null(control_method_to_string(_CONTROL_METHOD_INVALID));
	assert_int_equal(control_error_from_string("nope"), _CONTROL_ERROR_INVALID);
	assert_int_equal(control_error_from_string(""), _CONTROL_ERROR_INVALID);
	assert_int_equal(control_error_from_string(NULL), _CONTROL_ERROR_INVALID);
	assert_int_equal(control_method_from_string("Status"), _CONTROL_METHOD_INVALID);
	assert_int_equal(control_method_from_string(NULL), _CONTROL_METHOD_INVALID);
}

static void test_every_method_parses(void **state)
{
	for (int i = 0; i < _CONTROL_METHOD_MAX; i++) {
		_cleanup_free_ char *line = NULL;
		ControlRequest req;

		assert_true(asprintf(&line, "{\"api\":1,\"method\":\"%s\"}",
				     control_method_to_string(i)) > 0);
		parse_ok(line, &req);
		assert_int_equal(req.method, i);
		assert_null(req.id);
		assert_null(req.params);
		assert_false(req.progress);
		control_request_done(&req);
	}
}

static void test_full_request(void **state)
{
	const char *line = "{\"api\":1,\"id\":7,\"method\":\"prepare\","
			   "\"params\":{\"kernel\":\"/boot/vmlinuz\"},\"progress\":true}";
	ControlRequest req;

	parse_ok(line, &req);
	assert_int_equal(req.method, CONTROL_METHOD_PREPARE);
	assert_true(json_object_is_type(req.id, json_type_int));
	assert_int_equal(json_object_get_int(req.id), 7);
	assert_true(json_object_is_type(req.params, json_type_object));
	assert_true(req.progress);
	control_request_done(&req);
	assert_null(req.id);
	assert_null(req.params);

	/* Whitespace around the object, and a \r from a telnet-ish client. */
	parse_ok("  {\"api\":1,\"method\":\"status\",\"progress\":false} \r", &req);
	assert_false(req.progress);
	control_request_done(&req);

	/* An escaped backslash followed by u0000 is text, not a NUL. */
	parse_ok("{\"api\":1,\"id\":\"a\\\\u0000\",\"method\":\"status\"}", &req);
	assert_string_equal(json_object_get_string(req.id), "a\\u0000");
	control_request_done(&req);

	/* Done twice is harmless, and NULL too. */
	control_request_done(&req);
	control_request_done(NULL);
}

static void test_id_any_type(void **state)
{
	static const struct {
		const char *line;
		json_type type;
		const char *echo;
	} cases[] = {
		{ "{\"id\":42,\"api\":1,\"method\":\"status\"}", json_type_int, "42" },
		{ "{\"id\":-1.5,\"api\":1,\"method\":\"status\"}", json_type_double, "-1.5" },
		{ "{\"id\":\"abc/def\",\"api\":1,\"method\":\"status\"}", json_type_string,
		  "\"abc/def\"" },
		{ "{\"id\":{\"a\":[1,{\"b\":null}]},\"api\":1,\"method\":\"status\"}",
		  json_type_object, "{\"a\":[1,{\"b\":null}]}" },
		{ "{\"id\":[1,2],\"api\":1,\"method\":\"status\"}", json_type_array, "[1,2]" },
		{ "{\"id\":true,\"api\":1,\"method\":\"status\"}", json_type_boolean, "true" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_(json_object_putp) json_object *reply = NULL;
		_cleanup_free_ char *out = NULL, *expected = NULL;
		ControlRequest req;

		parse_ok(cases[i].line, &req);
		assert_true(json_object_is_type(req.id, cases[i].type));

		reply = control_reply_ok(req.id, NULL);
		assert_non_null(reply);
		out = control_to_line(reply, NULL);
		assert_true(asprintf(&expected, "{\"api\":1,\"id\":%s,\"ok\":true,\"result\":{}}\n",
				     cases[i].echo) > 0);
		assert_string_equal(out, expected);
		control_request_done(&req);
	}

	/* "id":null is the same as no id: nothing to echo. */
	ControlRequest req;

	parse_ok("{\"id\":null,\"api\":1,\"method\":\"status\"}", &req);
	assert_null(req.id);
	control_request_done(&req);
}

static void test_id_echoed_on_error(void **state)
{
	ControlRequest req;

	/* Every failure after the object is read keeps the id. */
	static const char *const lines[] = {
		"{\"id\":\"x\",\"api\":2,\"method\":\"status\"}",
		"{\"id\":\"x\",\"method\":\"status\"}",
		"{\"id\":\"x\",\"api\":1,\"method\":\"nope\"}",
		"{\"id\":\"x\",\"api\":1,\"method\":\"status\",\"bogus\":1}",
		"{\"id\":\"x\",\"api\":1,\"method\":\"status\",\"params\":{},\"progress\":1}",
		"{\"id\":\"x\",\"api\":1,\"method\":\"st\\u0000atus\"}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		_cleanup_free_ char *msg = NULL;
		ControlError code;

		assert_true(control_request_parse(lines[i], strlen(lines[i]), &req, &code, &msg) <
			    0);
		assert_non_null(req.id);
		assert_string_equal(json_object_get_string(req.id), "x");
		assert_null(req.params);
		control_request_done(&req);
	}

	/* No object, no id. */
	parse_fail_req("[1]", 3, CONTROL_ERROR_INVALID_JSON, NULL, &req);
	assert_null(req.id);
	control_request_done(&req);

	/* An id that cannot be written back is not echoed. */
	parse_fail("{\"id\":NaN,\"api\":1,\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "'id'");
	parse_fail_req("{\"id\":[-Infinity],\"api\":1,\"method\":\"status\"}", 44,
		       CONTROL_ERROR_INVALID_REQUEST, "'id'", &req);
	assert_null(req.id);
	control_request_done(&req);
}

static void test_invalid_json(void **state)
{
	ControlRequest req;

	parse_fail("", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("   ", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{\"api\":1,", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("hello", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{'api':1,'method':'status'}", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{\"api\":1,\"method\":'status'}", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{\"api\":1,}", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");
	parse_fail("{\"api\":1,\"method\":\"status\"}x", CONTROL_ERROR_INVALID_JSON,
		   "Invalid JSON");
	parse_fail("{\"api\":1,\"method\":\"status\"} {}", CONTROL_ERROR_INVALID_JSON,
		   "Invalid JSON");
	parse_fail("{\"api\":1,\"method\":\"status\"}\n{\"api\":1}", CONTROL_ERROR_INVALID_JSON,
		   "Invalid JSON");
	parse_fail("{\"api\":1,\"method\":\"\xff\"}", CONTROL_ERROR_INVALID_JSON, "Invalid JSON");

	/* A raw NUL cuts nothing short: the whole length is looked at. */
	parse_fail_req("{\"api\":1,\"method\":\"status\"}\0x", 29, CONTROL_ERROR_INVALID_JSON,
		       "NUL", &req);
	control_request_done(&req);

	/* Valid JSON that is not an object. */
	parse_fail("[]", CONTROL_ERROR_INVALID_JSON, "not a JSON object");
	parse_fail("[{\"api\":1,\"method\":\"status\"}]", CONTROL_ERROR_INVALID_JSON,
		   "not a JSON object");
	parse_fail("1", CONTROL_ERROR_INVALID_JSON, "not a JSON object");
	parse_fail("\"status\"", CONTROL_ERROR_INVALID_JSON, "not a JSON object");
	parse_fail("null", CONTROL_ERROR_INVALID_JSON, "not a JSON object");
	parse_fail("true", CONTROL_ERROR_INVALID_JSON, "not a JSON object");
}

static void test_deep_nesting(void **state)
{
	_cleanup_free_ char *line = NULL;
	size_t depth = 10000, n = 0;

	line = malloc(depth * 2 + 64);
	assert_non_null(line);
	n += sprintf(line, "{\"api\":1,\"method\":\"status\",\"id\":");
	for (size_t i = 0; i < depth; i++)
		line[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		line[n++] = ']';
	line[n++] = '}';
	line[n] = '\0';
	parse_fail(line, CONTROL_ERROR_INVALID_JSON, "nesting");

	/* A modest structured id is fine... */
	ControlRequest req;

	parse_ok("{\"api\":1,\"method\":\"status\",\"id\":[[[[[[1]]]]]]}", &req);
	control_request_done(&req);
	/* ...but not far beyond that. */
	parse_fail("{\"api\":1,\"method\":\"status\",\"id\":[[[[[[[[1]]]]]]]]}",
		   CONTROL_ERROR_INVALID_JSON, "nesting");
}

static void test_too_large(void **state)
{
	_cleanup_free_ char *line = NULL, *msg = NULL;
	ControlRequest req;
	ControlError code;
	int r;

	line = repeat(' ', CONTROL_REQUEST_MAX);
	memcpy(line, "{\"api\":1,\"method\":\"status\"}", 27);
	r = control_request_parse(line, CONTROL_REQUEST_MAX, &req, &code, &msg);
	assert_int_equal(r, -EMSGSIZE);
	assert_int_equal(code, CONTROL_ERROR_TOO_LARGE);
	assert_non_null(msg);
	control_request_done(&req);
	free(TAKE_PTR(msg));

	/* One byte less (the newline makes up the limit) is fine. */
	r = control_request_parse(line, CONTROL_REQUEST_MAX - 1, &req, &code, &msg);
	assert_int_equal(r, 0);
	control_request_done(&req);
}

static void test_api_member(void **state)
{
	_cleanup_free_ char *msg = NULL;
	ControlRequest req;
	ControlError code;

	parse_fail("{\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "Missing member 'api'");
	parse_fail("{}", CONTROL_ERROR_INVALID_REQUEST, "'api'");
	parse_fail("{\"api\":\"1\",\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'api' must be an integer");
	parse_fail("{\"api\":1.0,\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'api' must be an integer");
	parse_fail("{\"api\":true,\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'api'");
	parse_fail("{\"api\":null,\"method\":\"status\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'api'");
	parse_fail("{\"api\":2,\"method\":\"status\"}", CONTROL_ERROR_UNSUPPORTED_VERSION, "2");
	parse_fail("{\"api\":0,\"method\":\"status\"}", CONTROL_ERROR_UNSUPPORTED_VERSION, NULL);
	parse_fail("{\"api\":-1,\"method\":\"status\"}", CONTROL_ERROR_UNSUPPORTED_VERSION, NULL);

	/* A newer client's unknown members and methods: the version is what matters. */
	const char *newer = "{\"api\":2,\"method\":\"x\",\"new\":1}";

	assert_int_equal(control_request_parse(newer, strlen(newer), &req, &code, &msg),
			 -EPROTONOSUPPORT);
	assert_int_equal(code, CONTROL_ERROR_UNSUPPORTED_VERSION);
	control_request_done(&req);
}

static void test_method_member(void **state)
{
	parse_fail("{\"api\":1}", CONTROL_ERROR_INVALID_REQUEST, "Missing member 'method'");
	parse_fail("{\"api\":1,\"method\":1}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'method' must be a string");
	parse_fail("{\"api\":1,\"method\":null}", CONTROL_ERROR_INVALID_REQUEST, "'method'");
	parse_fail("{\"api\":1,\"method\":[\"status\"]}", CONTROL_ERROR_INVALID_REQUEST,
		   "'method'");
	parse_fail("{\"api\":1,\"method\":\"frobnicate\"}", CONTROL_ERROR_UNKNOWN_METHOD,
		   "Unknown method 'frobnicate'");
	parse_fail("{\"api\":1,\"method\":\"\"}", CONTROL_ERROR_UNKNOWN_METHOD, "Unknown method");
	parse_fail("{\"api\":1,\"method\":\"STATUS\"}", CONTROL_ERROR_UNKNOWN_METHOD, NULL);
	parse_fail("{\"api\":1,\"method\":\"status \"}", CONTROL_ERROR_UNKNOWN_METHOD, NULL);
	/* json-c would cut these at the NUL and find "status". */
	parse_fail("{\"api\":1,\"method\":\"status\\u0000x\"}", CONTROL_ERROR_INVALID_REQUEST,
		   "NUL");
	parse_fail("{\"api\":1,\"method\":\"status\",\"params\\u0000x\":{}}",
		   CONTROL_ERROR_INVALID_REQUEST, "NUL");
}

static void test_top_level_members(void **state)
{
	ControlRequest req;

	parse_fail("{\"api\":1,\"method\":\"status\",\"parms\":{}}", CONTROL_ERROR_INVALID_REQUEST,
		   "Unknown member 'parms'");
	parse_fail("{\"api\":1,\"method\":\"status\",\"\":{}}", CONTROL_ERROR_INVALID_REQUEST,
		   "Unknown member ''");
	parse_fail("{\"api\":1,\"method\":\"status\",\"progress\":\"true\"}",
		   CONTROL_ERROR_INVALID_REQUEST, "Member 'progress' must be a boolean");
	parse_fail("{\"api\":1,\"method\":\"status\",\"progress\":1}",
		   CONTROL_ERROR_INVALID_REQUEST, "'progress'");
	parse_fail("{\"api\":1,\"method\":\"status\",\"params\":[]}", CONTROL_ERROR_INVALID_REQUEST,
		   "Member 'params' must be an object");
	parse_fail("{\"api\":1,\"method\":\"status\",\"params\":null}",
		   CONTROL_ERROR_INVALID_REQUEST, "'params'");
	parse_fail("{\"api\":1,\"method\":\"status\",\"params\":\"{}\"}",
		   CONTROL_ERROR_INVALID_REQUEST, "'params'");

	/* A long unknown name is quoted, but cut short. */
	_cleanup_free_ char *name = repeat('n', 10000), *line = NULL, *msg = NULL;
	ControlError code;

	assert_true(asprintf(&line, "{\"api\":1,\"method\":\"status\",\"%s\":1}", name) > 0);
	assert_true(control_request_parse(line, strlen(line), &req, &code, &msg) < 0);
	assert_int_equal(code, CONTROL_ERROR_INVALID_REQUEST);
	assert_true(strlen(msg) < 200);
	control_request_done(&req);
}

static void test_prepare_params(void **state)
{
	_cleanup_(json_object_putp) json_object *p = NULL;
	_cleanup_free_ char *msg = NULL;
	PrepareParams pp;

	p = json("{\"kernel\":\"/boot/vmlinuz\",\"initrd\":\"/boot/initrd.img\","
		 "\"cmdline\":\"console=ttyS0 root=/dev/vda\",\"append\":\"quiet\","
		 "\"timeout_ms\":5000}");
	assert_int_equal(control_parse_prepare(p, &pp, &msg), 0);
	assert_null(msg);
	assert_string_equal(pp.kernel, "/boot/vmlinuz");
	assert_string_equal(pp.initrd, "/boot/initrd.img");
	assert_string_equal(pp.cmdline, "console=ttyS0 root=/dev/vda");
	assert_string_equal(pp.append, "quiet");
	assert_int_equal(pp.timeout_ms, 5000);
	prepare_params_done(&pp);
	assert_null(pp.kernel);
	prepare_params_done(&pp);
	prepare_params_done(NULL);
	json_object_put(TAKE_PTR(p));

	/* Only the kernel is mandatory; the rest stays NULL / 0 (the daemon's defaults). */
	p = json("{\"kernel\":\"/k\"}");
	assert_int_equal(control_parse_prepare(p, &pp, &msg), 0);
	assert_string_equal(pp.kernel, "/k");
	assert_null(pp.initrd);
	assert_null(pp.cmdline);
	assert_null(pp.append);
	assert_int_equal(pp.timeout_ms, 0);
	prepare_params_done(&pp);
	json_object_put(TAKE_PTR(p));

	/* An empty cmdline is a choice: boot with none. */
	p = json("{\"kernel\":\"/k\",\"cmdline\":\"\",\"timeout_ms\":3600000}");
	assert_int_equal(control_parse_prepare(p, &pp, &msg), 0);
	assert_string_equal(pp.cmdline, "");
	assert_int_equal(pp.timeout_ms, 3600000);
	prepare_params_done(&pp);
}

/* control_parse_* must refuse params, naming needle, and leave nothing allocated. */
static void prepare_fail(json_object *p, const char *needle)
{
	_cleanup_free_ char *msg = NULL;
	PrepareParams pp;

	if (control_parse_prepare(p, &pp, &msg) != -EINVAL)
		fail_msg("%s accepted", json_object_to_json_string(p));
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message '%s' does not contain '%s'", msg, needle);
	assert_null(pp.kernel);
	assert_null(pp.initrd);
	assert_null(pp.cmdline);
	assert_null(pp.append);
}

static void prepare_fail_str(const char *s, const char *needle)
{
	_cleanup_(json_object_putp) json_object *p = json(s);

	prepare_fail(p, needle);
}

static void test_prepare_params_invalid(void **state)
{
	prepare_fail(NULL, "Missing member 'params.kernel'");
	prepare_fail_str("{}", "Missing member 'params.kernel'");
	prepare_fail_str("{\"initrd\":\"/i\"}", "Missing member 'params.kernel'");
	prepare_fail_str("{\"kernel\":\"/k\",\"kernal\":\"/k\"}", "Unknown member 'params.kernal'");
	prepare_fail_str("{\"kernel\":1}", "Member 'params.kernel' must be a string");
	prepare_fail_str("{\"kernel\":null}", "Member 'params.kernel' must be a string");
	prepare_fail_str("{\"kernel\":\"/k\",\"initrd\":[]}", "Member 'params.initrd' must be");
	prepare_fail_str("{\"kernel\":\"/k\",\"cmdline\":false}",
			 "Member 'params.cmdline' must be");
	prepare_fail_str("{\"kernel\":\"/k\",\"append\":{}}", "Member 'params.append' must be");
	prepare_fail_str("{\"kernel\":\"\"}", "Member 'params.kernel' must not be empty");
	prepare_fail_str("{\"kernel\":\"boot/vmlinuz\"}",
			 "'params.kernel' must be an absolute path");
	prepare_fail_str("{\"kernel\":\"/k\",\"initrd\":\"\"}",
			 "'params.initrd' must not be empty");
	prepare_fail_str("{\"kernel\":\"/k\",\"initrd\":\"initrd\"}", "'params.initrd' must be an");

	/* A number given as a string, and numbers that are not integers. */
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":\"5000\"}",
			 "Member 'params.timeout_ms' must be an integer");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":5000.0}",
			 "Member 'params.timeout_ms' must be an integer");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":5e3}", "'params.timeout_ms' must be");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":true}", "'params.timeout_ms' must be");

	/* Out of range. */
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":0}",
			 "Member 'params.timeout_ms' is out of range");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":-1}", "'params.timeout_ms' is out of");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":3600001}",
			 "'params.timeout_ms' is out");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":4294967296}",
			 "'params.timeout_ms' is out");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":18446744073709551615}",
			 "'params.timeout_ms' is out");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":-9223372036854775808}",
			 "'params.timeout_ms' is out");
	prepare_fail_str("{\"kernel\":\"/k\",\"timeout_ms\":99999999999999999999999}",
			 "'params.timeout_ms' is out");

	/* Params must be an object. */
	_cleanup_(json_object_putp) json_object *arr = json("[\"/k\"]");

	prepare_fail(arr, "Member 'params' must be an object");
}

static void test_prepare_strings_bounded(void **state)
{
	_cleanup_(json_object_putp) json_object *p = NULL;
	_cleanup_free_ char *path = NULL, *cmdline = NULL, *msg = NULL;
	PrepareParams pp;

	/* PATH_MAX includes the NUL: PATH_MAX - 1 bytes fit, PATH_MAX do not. */
	path = repeat('a', PATH_MAX);
	path[0] = '/';
	p = json_object_new_object();
	json_object_object_add(p, "kernel", json_object_new_string_len(path, PATH_MAX - 1));
	assert_int_equal(control_parse_prepare(p, &pp, &msg), 0);
	assert_int_equal(strlen(pp.kernel), PATH_MAX - 1);
	prepare_params_done(&pp);

	json_object_object_add(p, "kernel", json_object_new_string(path));
	prepare_fail(p, "Member 'params.kernel' is longer than");

	json_object_object_add(p, "kernel", json_object_new_string("/k"));
	json_object_object_add(p, "initrd", json_object_new_string(path));
	prepare_fail(p, "Member 'params.initrd' is longer than");
	json_object_object_del(p, "initrd");

	cmdline = repeat('c', 4096);
	json_object_object_add(p, "cmdline", json_object_new_string_len(cmdline, 4095));
	assert_int_equal(control_parse_prepare(p, &pp, &msg), 0);
	prepare_params_done(&pp);
	json_object_object_add(p, "cmdline", json_object_new_string(cmdline));
	prepare_fail(p, "Member 'params.cmdline' is longer than");
	json_object_object_del(p, "cmdline");

	json_object_object_add(p, "append", json_object_new_string(cmdline));
	prepare_fail(p, "Member 'params.append' is longer than");
	json_object_object_del(p, "append");

	/* Embedded NULs, as a caller building objects by hand could make them. */
	json_object_object_add(p, "kernel", json_object_new_string_len("/boot\0/x", 8));
	prepare_fail(p, "Member 'params.kernel' contains a NUL");
	json_object_object_add(p, "kernel", json_object_new_string("/k"));
	json_object_object_add(p, "append", json_object_new_string_len("a\0b", 3));
	prepare_fail(p, "Member 'params.append' contains a NUL");
}

static void test_commit_params(void **state)
{
	_cleanup_(json_object_putp) json_object *p = NULL;
	_cleanup_free_ char *msg = NULL;
	CommitParams cp;

	assert_int_equal(control_parse_commit(NULL, &cp, &msg), 0);
	assert_int_equal(cp.freeze_timeout_ms, 0);

	p = json("{}");
	assert_int_equal(control_parse_commit(p, &cp, &msg), 0);
	assert_int_equal(cp.freeze_timeout_ms, 0);
	json_object_put(TAKE_PTR(p));

	p = json("{\"freeze_timeout_ms\":250}");
	assert_int_equal(control_parse_commit(p, &cp, &msg), 0);
	assert_int_equal(cp.freeze_timeout_ms, 250);
	json_object_put(TAKE_PTR(p));

	static const struct {
		const char *json, *needle;
	} bad[] = {
	    {"{\"freeze_timeout_ms\":0}", "Member 'params.freeze_timeout_ms' is out of range"},
	    {"{\"freeze_timeout_ms\":3600001}", "'params.freeze_timeout_ms' is out of range"},
	    {"{\"freeze_timeout_ms\":-5}", "'params.freeze_timeout_ms' is out of range"},
	    {"{\"freeze_timeout_ms\":\"250\"}", "'params.freeze_timeout_ms' must be an integer"},
	    {"{\"freeze_timeout_ms\":2.5}", "'params.freeze_timeout_ms' must be an integer"},
	    {"{\"freeze_timeout\":250}", "Unknown member 'params.freeze_timeout'"},
	    {"[]", "Member 'params' must be an object"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		p = json(bad[i].json);
		assert_int_equal(control_parse_commit(p, &cp, &msg), -EINVAL);
		assert_non_null(strstr(msg, bad[i].needle));
		assert_int_equal(cp.freeze_timeout_ms, 0);
		json_object_put(TAKE_PTR(p));
		free(TAKE_PTR(msg));
	}
}

static void test_release_params(void **state)
{
	_cleanup_(json_object_putp) json_object *p = NULL;
	_cleanup_free_ char *msg = NULL, *longest = NULL, *too_long = NULL;
	ReleaseParams rp;

	p = json("{\"vm_id\":\"vm-1.a_B\"}");
	assert_int_equal(control_parse_release(p, &rp, &msg), 0);
	assert_string_equal(rp.vm_id, "vm-1.a_B");
	release_params_done(&rp);
	assert_null(rp.vm_id);
	release_params_done(NULL);
	json_object_put(TAKE_PTR(p));

	longest = repeat('v', LU_VM_ID_MAX);
	p = json_object_new_object();
	json_object_object_add(p, "vm_id", json_object_new_string(longest));
	assert_int_equal(control_parse_release(p, &rp, &msg), 0);
	release_params_done(&rp);
	json_object_put(TAKE_PTR(p));

	too_long = repeat('v', LU_VM_ID_MAX + 1);
	struct {
		json_object *p;
		const char *needle;
	} bad[] = {
		{ NULL, "Missing member 'params.vm_id'" },
		{ json("{}"), "Missing member 'params.vm_id'" },
		{ json("{\"vm_id\":1}"), "Member 'params.vm_id' must be a string" },
		{ json("{\"vm_id\":\"\"}"), "Member 'params.vm_id' must not be empty" },
		{ json("{\"vm_id\":\"-vm\"}"), "Member 'params.vm_id' is not a valid VM id" },
		{ json("{\"vm_id\":\".vm\"}"), "Member 'params.vm_id' is not a valid VM id" },
		{ json("{\"vm_id\":\"vm/1\"}"), "Member 'params.vm_id' is not a valid VM id" },
		{ json("{\"vm_id\":\"vm 1\"}"), "Member 'params.vm_id' is not a valid VM id" },
		{ json("{\"vm_id\":\"vm\\u00e9\"}"), "Member 'params.vm_id' is not a valid VM id" },
		{ json_object_new_object(), "Member 'params.vm_id' is longer than" },
		{ json("{\"vm_id\":\"vm\",\"force\":true}"), "Unknown member 'params.force'" },
	};
	json_object_object_add(bad[9].p, "vm_id", json_object_new_string(too_long));

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(control_parse_release(bad[i].p, &rp, &msg), -EINVAL);
		if (!strstr(msg, bad[i].needle))
			fail_msg("case %zu: '%s' does not contain '%s'", i, msg, bad[i].needle);
		assert_null(rp.vm_id);
		json_object_put(bad[i].p);
		free(TAKE_PTR(msg));
	}
}

static void test_no_params(void **state)
{
	_cleanup_(json_object_putp) json_object *p = NULL;
	_cleanup_free_ char *msg = NULL;

	assert_int_equal(control_parse_no_params(NULL, &msg), 0);
	assert_null(msg);
	p = json("{}");
	assert_int_equal(control_parse_no_params(p, &msg), 0);
	json_object_put(TAKE_PTR(p));

	p = json("{\"verbose\":true}");
	assert_int_equal(control_parse_no_params(p, &msg), -EINVAL);
	assert_non_null(strstr(msg, "Unknown member 'params.verbose'"));
	json_object_put(TAKE_PTR(p));
	free(TAKE_PTR(msg));

	p = json("[]");
	assert_int_equal(control_parse_no_params(p, &msg), -EINVAL);
	assert_non_null(strstr(msg, "Member 'params' must be an object"));
}

/* Through the whole request path, as the daemon does it. */
static void test_request_then_params(void **state)
{
	_cleanup_free_ char *msg = NULL;
	ControlRequest req;
	ReleaseParams rp;
	PrepareParams pp;

	parse_ok("{\"api\":1,\"method\":\"release\",\"params\":{\"vm_id\":\"vm-7\"}}", &req);
	assert_int_equal(req.method, CONTROL_METHOD_RELEASE);
	assert_int_equal(control_parse_release(req.params, &rp, &msg), 0);
	assert_string_equal(rp.vm_id, "vm-7");
	release_params_done(&rp);
	control_request_done(&req);

	parse_ok("{\"api\":1,\"method\":\"prepare\"}", &req);
	assert_int_equal(control_parse_prepare(req.params, &pp, &msg), -EINVAL);
	assert_non_null(strstr(msg, "params.kernel"));
	control_request_done(&req);
}

static void assert_line(json_object *o, const char *expected)
{
	_cleanup_free_ char *line = NULL;
	size_t len = 0;

	assert_non_null(o);
	line = control_to_line(o, &len);
	assert_non_null(line);
	assert_string_equal(line, expected);
	assert_int_equal(len, strlen(expected));
}

static void test_reply_ok(void **state)
{
	_cleanup_(json_object_putp) json_object *id = json_object_new_int(7), *reply = NULL;
	json_object *result = json_object_new_object();

	json_object_object_add(result, "kernel", json_object_new_string("/boot/vmlinuz"));
	json_object_object_add(result, "state", json_object_new_string("prepared"));
	reply = control_reply_ok(id, result);
	assert_line(reply, "{\"api\":1,\"id\":7,\"ok\":true,"
			   "\"result\":{\"kernel\":\"/boot/vmlinuz\",\"state\":\"prepared\"}}\n");
	json_object_put(TAKE_PTR(reply));

	/* No id: none echoed. */
	reply = control_reply_ok(NULL, json_object_new_object());
	assert_line(reply, "{\"api\":1,\"ok\":true,\"result\":{}}\n");
	json_object_put(TAKE_PTR(reply));

	/* The id stays the caller's. */
	assert_int_equal(json_object_get_int(id), 7);
}

static void test_reply_error(void **state)
{
	_cleanup_(json_object_putp) json_object *id = json_object_new_string("req-1"),
						*reply = NULL;

	reply = control_reply_error(id, CONTROL_ERROR_BAD_STATE, -EBUSY, "no update is prepared");
	assert_line(reply,
		    "{\"api\":1,\"id\":\"req-1\",\"ok\":false,"
		    "\"error\":{\"code\":\"bad-state\",\"message\":\"no update is prepared\","
		    "\"errno\":\"EBUSY\"}}\n");
	json_object_put(TAKE_PTR(reply));

	/* Positive errno is accepted as well. */
	reply = control_reply_error(NULL, CONTROL_ERROR_KERNEL_IMAGE, ENOENT, "/boot/x: missing");
	assert_line(reply, "{\"api\":1,\"ok\":false,\"error\":{\"code\":\"kernel-image\","
			   "\"message\":\"/boot/x: missing\",\"errno\":\"ENOENT\"}}\n");
	json_object_put(TAKE_PTR(reply));

	/* No system call failed: no errno member. */
	reply = control_reply_error(id, CONTROL_ERROR_UNKNOWN_METHOD, 0, "Unknown method 'x'");
	assert_line(reply, "{\"api\":1,\"id\":\"req-1\",\"ok\":false,\"error\":{"
			   "\"code\":\"unknown-method\",\"message\":\"Unknown method 'x'\"}}\n");
	json_object_put(TAKE_PTR(reply));

	/* No message: fall back to strerror, or the code. */
	reply = control_reply_error(NULL, CONTROL_ERROR_INTERNAL, -ENOMEM, NULL);
	assert_line(reply, "{\"api\":1,\"ok\":false,\"error\":{\"code\":\"internal\","
			   "\"message\":\"Cannot allocate memory\",\"errno\":\"ENOMEM\"}}\n");
	json_object_put(TAKE_PTR(reply));
	reply = control_reply_error(NULL, CONTROL_ERROR_TOO_MANY_CLIENTS, 0, NULL);
	assert_line(reply, "{\"api\":1,\"ok\":false,\"error\":{\"code\":\"too-many-clients\","
			   "\"message\":\"too-many-clients\"}}\n");
	json_object_put(TAKE_PTR(reply));

	/* Every code serializes to its string. */
	for (int i = 0; i < _CONTROL_ERROR_MAX; i++) {
		json_object *e, *code;

		reply = control_reply_error(NULL, i, 0, "m");
		assert_true(json_object_object_get_ex(reply, "error", &e));
		assert_true(json_object_object_get_ex(e, "code", &code));
		assert_string_equal(json_object_get_string(code), control_error_to_string(i));
		json_object_put(TAKE_PTR(reply));
	}
}

static void test_reply_from_failed_parse(void **state)
{
	_cleanup_(json_object_putp) json_object *reply = NULL;
	_cleanup_free_ char *msg = NULL;
	const char *line = "{\"api\":1,\"id\":{\"n\":3},\"method\":\"status\",\"bogus\":0}";
	ControlRequest req;
	ControlError code;

	assert_int_equal(control_request_parse(line, strlen(line), &req, &code, &msg), -EINVAL);
	reply = control_reply_error(req.id, code, 0, msg);
	assert_line(reply,
		    "{\"api\":1,\"id\":{\"n\":3},\"ok\":false,\"error\":{"
		    "\"code\":\"invalid-request\",\"message\":\"Unknown member 'bogus'\"}}\n");
	control_request_done(&req);
}

static void test_event(void **state)
{
	_cleanup_(json_object_putp) json_object *ev = control_event_new("vmm");

	json_object_object_add(ev, "vm_id", json_object_new_string("vm-1"));
	json_object_object_add(ev, "state", json_object_new_string("prepared"));
	json_object_object_add(ev, "time_us", json_object_new_int64(1763719200000000LL));
	assert_line(ev, "{\"api\":1,\"event\":\"vmm\",\"vm_id\":\"vm-1\",\"state\":\"prepared\","
			"\"time_us\":1763719200000000}\n");
}

static void test_to_line(void **state)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();

	/* Paths keep their slashes; control characters and quotes are escaped, so one line. */
	json_object_object_add(o, "image", json_object_new_string("/boot/vmlinuz-6.18"));
	json_object_object_add(o, "cmdline", json_object_new_string("a\nb\"c\\"));
	json_object_object_add(o, "n", json_object_new_array());
	assert_line(o,
		    "{\"image\":\"/boot/vmlinuz-6.18\",\"cmdline\":\"a\\nb\\\"c\\\\\",\"n\":[]}\n");

	/* The line reads back as the same request. */
	_cleanup_(json_object_putp) json_object *req = json_object_new_object();
	_cleanup_free_ char *line = NULL;
	ControlRequest parsed;
	size_t len;

	json_object_object_add(req, "api", json_object_new_int(1));
	json_object_object_add(req, "method", json_object_new_string("prepare"));
	json_object_object_add(req, "params", json_object_get(o));
	line = control_to_line(req, &len);
	assert_int_equal(line[len - 1], '\n');
	assert_int_equal(control_request_parse(line, len - 1, &parsed, &(ControlError){ 0 },
					       &(char *){ NULL }),
			 0);
	assert_int_equal(parsed.method, CONTROL_METHOD_PREPARE);
	control_request_done(&parsed);

	/* ret_len is optional. */
	free(control_to_line(o, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_tables),
		cmocka_unit_test(test_every_method_parses),
		cmocka_unit_test(test_full_request),
		cmocka_unit_test(test_id_any_type),
		cmocka_unit_test(test_id_echoed_on_error),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_api_member),
		cmocka_unit_test(test_method_member),
		cmocka_unit_test(test_top_level_members),
		cmocka_unit_test(test_prepare_params),
		cmocka_unit_test(test_prepare_params_invalid),
		cmocka_unit_test(test_prepare_strings_bounded),
		cmocka_unit_test(test_commit_params),
		cmocka_unit_test(test_release_params),
		cmocka_unit_test(test_no_params),
		cmocka_unit_test(test_request_then_params),
		cmocka_unit_test(test_reply_ok),
		cmocka_unit_test(test_reply_error),
		cmocka_unit_test(test_reply_from_failed_parse),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_to_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
