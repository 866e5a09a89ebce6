/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One request line from a control client, taken the way the daemon's
 * control server takes it (manager-control.c): control_request_parse(), the
 * method's parameter table, then a reply that echoes the request's "id".
 * Whatever the line held, the reply must be one line of strict JSON: a
 * client that sent garbage still gets an answer it can read.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control-protocol.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(json_object *reply)
{
	_cleanup_free_ char *line = NULL;
	struct json_tokener *tok;
	json_object *back;
	size_t len = 0;

	if (!reply)
		return; /* out of memory */
	line = control_to_line(reply, &len);
	json_object_put(reply);
	if (!line)
		return;

	/* The newline ends the reply and appears nowhere else in it. */
	if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
		abort();

	tok = json_tokener_new();
	if (!tok)
		return;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	back = json_tokener_parse_ex(tok, line, (int)len - 1);
	if (!json_object_is_type(back, json_type_object) ||
	    json_tokener_get_parse_end(tok) != len - 1)
		abort();
	json_object_put(back);
	json_tokener_free(tok);
}

/* What handle_request() does before it acts: check the params of the method. */
static int parse_params(const ControlRequest *req, char **message)
{
	PrepareParams prepare;
	CommitParams commit;
	ReleaseParams release;
	int r;

	switch (req->method) {
	case CONTROL_METHOD_PREPARE:
		r = control_parse_prepare(req->params, &prepare, message);
		if (r >= 0 && (!prepare.kernel || prepare.kernel[0] != '/'))
			abort();
		prepare_params_done(&prepare);
		return r;
	case CONTROL_METHOD_COMMIT:
		return control_parse_commit(req->params, &commit, message);
	case CONTROL_METHOD_RELEASE:
		r = control_parse_release(req->params, &release, message);
		if (r >= 0 && !release.vm_id)
			abort();
		release_params_done(&release);
		return r;
	default:
		return control_parse_no_params(req->params, message);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *line = NULL, *message = NULL;
	ControlRequest req;
	ControlError code;
	int r;

	/* A copy of exactly size bytes, no NUL after it: ASan sees any overread. */
	line = memdup(data, size);
	if (!line)
		return 0;

	r = control_request_parse(line, size, &req, &code, &message);
	if (r < 0) {
		if (code < 0 || code >= _CONTROL_ERROR_MAX || req.params)
			abort();
		check_reply(control_reply_error(req.id, code, r, message));
		control_request_done(&req);
		return 0;
	}
	if (req.method < 0 || req.method >= _CONTROL_METHOD_MAX || message)
		abort();

	r = parse_params(&req, &message);
	if (r < 0)
		check_reply(control_reply_error(req.id, CONTROL_ERROR_INVALID_REQUEST, 0, message));
	else
		check_reply(control_reply_ok(req.id, NULL));
	control_request_done(&req);
	return 0;
}
