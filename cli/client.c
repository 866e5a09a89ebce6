/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "client.h"
#include "control-protocol.h"
#include "socket-util.h"

#define CLIENT_BUFFER_INITIAL (64U * 1024)

struct Client {
	int fd;
	char *buf;
	size_t size;    /* allocated */
	size_t start;   /* first unread byte */
	size_t end;     /* one past the last byte read */
	size_t scanned; /* buf[start..scanned) holds no '\n' */
	int64_t next_id;
};

DEFINE_FREEP(json_object, json_object_put)

int client_connect(const char *path, Client **ret)
{
	_cleanup_(client_freep) Client *c = NULL;
	int fd;

	fd = socket_connect_unix(path, SOCK_STREAM);
	if (fd < 0)
		return fd;

	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;

	*ret = TAKE_PTR(c);
	return 0;
}

Client *client_free(Client *c)
{
	if (!c)
		return NULL;
	safe_close(c->fd);
	free(c->buf);
	free(c);
	return NULL;
}

static usec_t deadline_from_timeout(usec_t timeout_us)
{
	if (timeout_us == CLIENT_NO_TIMEOUT)
		return UINT64_MAX;
	return now_usec(CLOCK_MONOTONIC) + timeout_us;
}

/* Wait until fd is readable/writable or the deadline passes. */
static int wait_fd(int fd, short events, usec_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int timeout_ms = -1, r;

	if (deadline != UINT64_MAX) {
		usec_t now = now_usec(CLOCK_MONOTONIC);

		if (now >= deadline)
			return -ETIMEDOUT;
		timeout_ms = (int)MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC,
				      (usec_t)INT32_MAX);
	}

	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return negative_errno();
	if (r == 0)
		return -ETIMEDOUT;
	return 0;
}

static int write_all(Client *c, const char *p, size_t len, usec_t deadline)
{
	while (len > 0) {
		ssize_t n;
		int r;

		r = wait_fd(c->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN)
				continue;
			return errno == EPIPE ? -ECONNRESET : negative_errno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Make room for more bytes: first reclaim what was consumed, then grow up to the limit. */
static int buffer_reserve(Client *c)
{
	size_t size;
	char *p;

	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->scanned -= c->start;
		c->start = 0;
	}
	if (c->end < c->size)
		return 0;
	if (c->size > CLIENT_LINE_MAX)
		return -EMSGSIZE;

	size = c->size == 0 ? CLIENT_BUFFER_INITIAL : MIN(c->size * 2, CLIENT_LINE_MAX + 1);
	p = realloc(c->buf, size);
	if (!p)
		return -ENOMEM;
	c->buf = p;
	c->size = size;
	return 0;
}

static int message_parse(const char *line, size_t len, json_object **ret)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	struct json_tokener *tok;
	json_object *api;
	size_t end;

	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, line, (int)len);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (!o || !json_object_is_type(o, json_type_object))
		return -EBADMSG;
	for (; end < len; end++)
		if (!strchr(" \t\r", line[end]))
			return -EBADMSG;
	if (!json_object_object_get_ex(o, "api", &api) ||
	    !json_object_is_type(api, json_type_int) ||
	    json_object_get_int64(api) != CONTROL_API_VERSION)
		return -EBADMSG;

	*ret = TAKE_PTR(o);
	return 0;
}

static int client_read_until(Client *c, usec_t deadline, json_object **ret)
{
	for (;;) {
		char *nl;
		ssize_t n;
		int r;

		nl = c->end > c->scanned ? memchr(c->buf + c->scanned, '\n', c->end - c->scanned)
					 : NULL;
		if (nl) {
			size_t len = (size_t)(nl - (c->buf + c->start));
			const char *line = c->buf + c->start;

			c->start = c->scanned = (size_t)(nl - c->buf) + 1;
			if (len == 0)
				continue;
			return message_parse(line, len, ret);
		}
		c->scanned = c->end;
		if (c->end - c->start > CLIENT_LINE_MAX)
			return -EMSGSIZE;

		r = buffer_reserve(c);
		if (r < 0)
			return r;
		r = wait_fd(c->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		n = recv(c->fd, c->buf + c->end, c->size - c->end, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? -ECONNRESET : negative_errno();
		}
		/* EOF, possibly in the middle of a line: either way the reply is lost. */
		if (n == 0)
			return -ECONNRESET;
		c->end += (size_t)n;
	}
}

int client_read(Client *c, usec_t timeout_us, json_object **ret)
{
	return client_read_until(c, deadline_from_timeout(timeout_us), ret);
}

static json_object *request_new(int64_t id, const char *method, json_object *params, bool progress)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(o, "api", json_object_new_int(CONTROL_API_VERSION)) < 0 ||
	    json_object_object_add(o, "id", json_object_new_int64(id)) < 0 ||
	    json_object_object_add(o, "method", json_object_new_string(method)) < 0)
		return NULL;
	if (params && json_object_object_add(o, "params", json_object_get(params)) < 0)
		return NULL;
	if (progress && json_object_object_add(o, "progress", json_object_new_boolean(true)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/* Our reply: "ok" is a boolean, and "id", when there, is ours (a refusal may have none). */
static bool reply_is_ours(json_object *m, int64_t id)
{
	json_object *ok, *rid;

	if (!json_object_object_get_ex(m, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
		return false;
	if (!json_object_object_get_ex(m, "id", &rid) || !rid)
		return true;
	return json_object_is_type(rid, json_type_int) && json_object_get_int64(rid) == id;
}

int client_call(Client *c, const char *method, json_object *params, bool progress,
		usec_t timeout_us, client_event_fn on_event, void *userdata,
		json_object **ret_reply)
{
	_cleanup_(json_object_putp) json_object *req = NULL;
	_cleanup_free_ char *line = NULL;
	usec_t deadline = deadline_from_timeout(timeout_us);
	int64_t id = c->next_id++;
	size_t len;
	int r, r_send;

	req = request_new(id, method, params, progress);
	if (!req)
		return -ENOMEM;
	line = control_to_line(req, &len);
	if (!line)
		return -ENOMEM;

	/*
	 * A daemon that refuses us (permission-denied, too-many-clients) says so
	 * and closes: the write may fail, but the reason may still be there to read.
	 */
	r_send = write_all(c, line, len, deadline);
	if (r_send < 0 && r_send != -ECONNRESET)
		return r_send;

	for (;;) {
		_cleanup_(json_object_putp) json_object *m = NULL;
		json_object *ev;

		r = client_read_until(c, deadline, &m);
		if (r < 0)
			return r_send < 0 ? r_send : r;

		if (json_object_object_get_ex(m, "event", &ev)) {
			if (!json_object_is_type(ev, json_type_string))
				return -EBADMSG;
			if (on_event) {
				r = on_event(m, userdata);
				if (r < 0)
					return r;
			}
			continue;
		}
		if (!reply_is_ours(m, id))
			return -EBADMSG;

		*ret_reply = TAKE_PTR(m);
		return 0;
	}
}
