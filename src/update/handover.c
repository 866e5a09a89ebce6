/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handover.h"
#include "macro.h"
#include "string-util.h"

#define HANDOVER_SIZE_MAX (64 * 1024)

void strv_free(char **l)
{
	if (!l)
		return;
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
}

int state_file_write(const char *dir, const char *name, const char *data, size_t len)
{
	char tmp[4096], path[4096];
	_cleanup_close_ int fd = -1, dfd = -1;
	size_t off = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return negative_errno();
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return negative_errno();
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0)
			return negative_errno();
		off += (size_t)n;
	}
	/* reboot(KEXEC) syncs nothing by itself: make it durable now */
	if (fsync(fd) < 0 || rename(tmp, path) < 0)
		return negative_errno();
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	return 0;
}

int handover_write(const char *state_dir, const Manifest *m)
{
	json_object *o = json_object_new_object(), *mods = json_object_new_array();
	const char *s;
	size_t len;
	int r;

	json_object_object_add(o, "update_id", json_object_new_string(m->update_id));
	for (size_t i = 0; i < m->n_modules; i++)
		json_object_array_add(mods, json_object_new_string(m->modules[i]));
	json_object_object_add(o, "modules", mods);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	r = s ? state_file_write(state_dir, HANDOVER_FILE_NAME, s, len) : -ENOMEM;
	json_object_put(o);
	return r;
}

int handover_read(const char *state_dir, char **ret_update_id, char ***ret_modules, size_t *ret_n)
{
	char path[4096], buf[HANDOVER_SIZE_MAX + 1];
	_cleanup_close_ int fd = -1;
	json_object *o = NULL, *id, *mods;
	char **l = NULL;
	size_t n = 0;
	ssize_t k;
	int r = -EBADMSG;

	snprintf(path, sizeof(path), "%s/%s", state_dir, HANDOVER_FILE_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	k = read(fd, buf, sizeof(buf) - 1);
	if (k < 0)
		return negative_errno();
	buf[k] = '\0';

	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "update_id", &id) || !json_object_is_type(id, json_type_string) ||
	    !update_id_valid(json_object_get_string(id)) ||
	    !json_object_object_get_ex(o, "modules", &mods) || !json_object_is_type(mods, json_type_array) ||
	    json_object_array_length(mods) > MANIFEST_MODULES_MAX)
		goto out;

	n = json_object_array_length(mods);
	l = calloc(n + 1, sizeof(char *));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(mods, i);

		if (!json_object_is_type(e, json_type_string) ||
		    json_object_get_string_len(e) > MANIFEST_MODULE_NAME_MAX)
			goto out;
		l[i] = strdup(json_object_get_string(e));
		if (!l[i]) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret_update_id = strdup(json_object_get_string(id));
	if (!*ret_update_id) {
		r = -ENOMEM;
		goto out;
	}
	*ret_modules = TAKE_PTR(l);
	*ret_n = n;
	r = 0;
out:
	strv_free(l);
	json_object_put(o);
	return r;
}

int handover_remove(const char *state_dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", state_dir, HANDOVER_FILE_NAME);
	return unlink(path) < 0 && errno != ENOENT ? negative_errno() : 0;
}
