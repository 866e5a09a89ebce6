/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"
#include "macro.h"
#include "update-file.h"

#define UPDATE_FILE_FORMAT "liveupdated-update"

UpdateFile *update_file_free(UpdateFile *f)
{
	if (!f)
		return NULL;
	manifest_free(f->manifest);
	free(f);
	return NULL;
}

static bool tag_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 8)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

static bool state_persisted(UpdateState s)
{
	return s == UPDATE_PREPARING || s == UPDATE_PREPARED || s == UPDATE_FREEZING;
}

int update_file_to_json(const UpdateFile *f, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *manifest = NULL;
	json_object *o, *mo;
	const char *s;
	size_t len;
	int r;

	if (!state_persisted(f->state) || !tag_valid(f->tag) || !f->manifest)
		return -EINVAL;
	r = manifest_to_json(f->manifest, &manifest, &len);
	if (r < 0)
		return r;
	mo = json_tokener_parse(manifest);
	o = json_object_new_object();
	if (!mo || !o) {
		json_object_put(mo);
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "format", json_object_new_string(UPDATE_FILE_FORMAT));
	json_object_object_add(o, "version", json_object_new_int(UPDATE_FILE_VERSION));
	json_object_object_add(o, "state", json_object_new_string(update_state_to_string(f->state)));
	json_object_object_add(o, "tag", json_object_new_string(f->tag));
	json_object_object_add(o, "prepare_timeout_ms", json_object_new_int64(f->prepare_timeout_ms));
	json_object_object_add(o, "manifest", mo);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	*ret = s ? strndup(s, len) : NULL;
	json_object_put(o);
	if (!*ret)
		return -ENOMEM;
	*ret_len = len;
	return 0;
}

int update_file_from_json(const char *buf, size_t len, UpdateFile **ret)
{
	_cleanup_(update_file_freep) UpdateFile *f = NULL;
	json_tokener *tok;
	json_object *o, *v, *mo;
	const char *s;
	size_t mlen;
	int64_t t;
	int r = -EBADMSG;

	if (len == 0 || len > MANIFEST_SIZE_MAX || memchr(buf, '\0', len))
		return -EBADMSG;
	tok = json_tokener_new_ex(10);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (!o)
		return -EBADMSG;

	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	if (!json_object_object_get_ex(o, "format", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), UPDATE_FILE_FORMAT) != 0)
		goto out;
	if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int))
		goto out;
	if (json_object_get_int64(v) != UPDATE_FILE_VERSION) {
		r = -EPROTONOSUPPORT;
		goto out;
	}
	if (!json_object_object_get_ex(o, "state", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	f->state = update_state_from_string(json_object_get_string(v));
	if (!state_persisted(f->state))
		goto out;
	if (!json_object_object_get_ex(o, "tag", &v) || !json_object_is_type(v, json_type_string) ||
	    !tag_valid(json_object_get_string(v)))
		goto out;
	strcpy(f->tag, json_object_get_string(v));
	if (!json_object_object_get_ex(o, "prepare_timeout_ms", &v) || !json_object_is_type(v, json_type_int))
		goto out;
	t = json_object_get_int64(v);
	if (t < 1 || t > 3600000)
		goto out;
	f->prepare_timeout_ms = (uint32_t)t;
	if (!json_object_object_get_ex(o, "manifest", &mo) || !json_object_is_type(mo, json_type_object))
		goto out;
	s = json_object_to_json_string_length(mo, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &mlen);
	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	r = manifest_from_json(s, mlen, &f->manifest);
	if (r < 0)
		goto out;
	*ret = TAKE_PTR(f);
	r = 0;
out:
	json_object_put(o);
	return r;
}

int update_file_write(const char *state_dir, const UpdateFile *f)
{
	_cleanup_free_ char *json = NULL;
	size_t len;
	int r;

	r = update_file_to_json(f, &json, &len);
	if (r < 0)
		return r;
	return state_file_write(state_dir, UPDATE_FILE_NAME, json, len);
}

int update_file_read(const char *state_dir, UpdateFile **ret)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	char path[4096];
	size_t len = 0, size = 0;

	snprintf(path, sizeof(path), "%s/%s", state_dir, UPDATE_FILE_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	for (;;) {
		ssize_t n;

		if (len == size) {
			char *a;

			if (size >= MANIFEST_SIZE_MAX)
				return -EFBIG;
			size = size ? size * 2 : 16384;
			a = realloc(buf, size + 1);
			if (!a)
				return -ENOMEM;
			buf = a;
		}
		n = read(fd, buf + len, size - len);
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf)
		return -EBADMSG;
	return update_file_from_json(buf, len, ret);
}

int update_file_remove(const char *state_dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", state_dir, UPDATE_FILE_NAME);
	return unlink(path) < 0 && errno != ENOENT ? negative_errno() : 0;
}
