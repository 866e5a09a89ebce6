/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The JSON API server (man/liveupdated-api.md): newline-delimited JSON on a
 * unix stream socket. Each client has an input buffer bounded by
 * CONTROL_REQUEST_MAX and an output queue bounded by CONTROL_OUTPUT_MAX;
 * a client that sends more, or reads too slowly, is dropped. Requests are
 * answered in order: while prepare or commit is pending for a client, its
 * further input waits in the buffer.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "control-protocol.h"
#include "log.h"
#include "manager.h"
#include "socket-util.h"

struct ControlClient {
	Manager *manager;
	ControlClient *next, *prev;
	int fd;
	sd_event_source *io;
	sd_event_source *defer; /* resumes buffered input after a deferred reply */
	struct ucred cred;
	char in[CONTROL_REQUEST_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool subscribed;
	bool waiting;  /* a prepare/commit of this client is pending */
	bool closing;  /* drop once the output is flushed */
	bool dead;     /* disconnected; freed from the loop, never under a caller's feet */
};

static void client_free(ControlClient *c)
{
	Manager *m = c->manager;

	manager_forget_client(m, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		m->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->n_clients--;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->defer);
	safe_close(c->fd);
	free(c->out);
	free(c);
}

void manager_control_free_all(Manager *m)
{
	while (m->clients)
		client_free(m->clients);
}

void manager_forget_client(Manager *m, ControlClient *c)
{
	if (m->waiter != c)
		return;
	/* the operation goes on; only its answer has nowhere to go */
	m->waiter = NULL;
	json_object_put(m->waiter_id);
	m->waiter_id = NULL;
	m->waiter_progress = false;
}

static int client_update_events(ControlClient *c)
{
	uint32_t events = c->out_len > c->out_off ? EPOLLOUT : 0;

	if (!c->waiting && !c->closing)
		events |= EPOLLIN;
	if (!c->io)
		return -EPIPE;
	return sd_event_source_set_io_events(c->io, events);
}

/* Write what we can now; the rest goes out on EPOLLOUT. Returns -EPIPE if the client is gone. */
static int client_flush(ControlClient *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -EPIPE;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing)
			return -EPIPE;
	}
	return client_update_events(c);
}

static int client_queue(ControlClient *c, json_object *o)
{
	_cleanup_free_ char *line = NULL;
	size_t len;
	char *a;

	line = control_to_line(o, &len);
	if (!line)
		return -ENOMEM;
	if (c->out_len - c->out_off + len > CONTROL_OUTPUT_MAX) {
		log_notice("Control client (pid %d) is not reading; dropping it", (int)c->cred.pid);
		return -ENOBUFS;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	a = realloc(c->out, c->out_len + len);
	if (!a)
		return -ENOMEM;
	c->out = a;
	memcpy(c->out + c->out_len, line, len);
	c->out_len += len;
	return client_flush(c);
}

static int on_client_reap(sd_event_source *s, void *userdata)
{
	client_free(userdata);
	return 0;
}

/*
 * Disconnect now, free later: a client can die in the middle of handling
 * its own request (a send fails deep inside an update step), and the
 * callers up the stack still hold it.
 */
static void client_kill(ControlClient *c)
{
	if (c->dead)
		return;
	c->dead = true;
	manager_forget_client(c->manager, c);
	c->io = sd_event_source_disable_unref(c->io);
	c->fd = safe_close(c->fd);
	c->defer = sd_event_source_disable_unref(c->defer);
	/* Without memory for the reaper, leak this client rather than risk a use-after-free. */
	if (sd_event_add_defer(c->manager->event, &c->defer, on_client_reap, c) < 0)
		log_oom();
}

/* Queue o (consumed). Returns false if the client is gone. */
static bool client_send(ControlClient *c, json_object *o)
{
	int r = c->dead ? -EPIPE : client_queue(c, o);

	json_object_put(o);
	if (r < 0) {
		client_kill(c);
		return false;
	}
	return true;
}

static bool client_error(ControlClient *c, json_object *id, ControlError code, int error,
			 const char *message)
{
	return client_send(c, control_reply_error(id, code, error, message));
}

/* Answer once and hang up when that answer is out. c may be gone on return. */
static void client_refuse(ControlClient *c, ControlError code, int error, const char *message)
{
	c->closing = true;
	c->in_len = 0;
	(void)client_error(c, NULL, code, error, message);
}

static bool client_wants_events(Manager *m, ControlClient *c)
{
	return !c->dead && (c->subscribed || (c == m->waiter && m->waiter_progress));
}

void manager_emit(Manager *m, json_object *event)
{
	ControlClient *c, *next;

	for (c = m->clients; c; c = next) {
		next = c->next;
		if (client_wants_events(m, c))
			(void)client_send(c, json_object_get(event));
	}
	json_object_put(event);
}

/* Nobody to tell: no event is built. A thousand VMMs change state inside the blackout. */
static bool manager_has_listeners(Manager *m)
{
	for (ControlClient *c = m->clients; c; c = c->next)
		if (client_wants_events(m, c))
			return true;
	return false;
}

void manager_emit_state(Manager *m)
{
	json_object *e = control_event_new("state");

	json_object_object_add(e, "update_id", m->update ? json_object_new_string(m->update->id) : NULL);
	json_object_object_add(e, "state", json_object_new_string(update_state_to_string(m->state)));
	json_object_object_add(e, "time_us", json_object_new_uint64(manager_now()));
	manager_emit(m, e);
}

void manager_emit_vmm(Manager *m, Vmm *v)
{
	json_object *e;

	if (!manager_has_listeners(m))
		return;
	e = control_event_new("vmm");
	json_object_object_add(e, "vm_id", json_object_new_string(v->vm_id));
	json_object_object_add(e, "state", json_object_new_string(vmm_state_to_string(v->state)));
	json_object_object_add(e, "time_us", json_object_new_uint64(manager_now()));
	manager_emit(m, e);
}

static void client_process(ControlClient *c);

static int on_client_defer(sd_event_source *s, void *userdata)
{
	ControlClient *c = userdata;

	c->defer = sd_event_source_disable_unref(c->defer);
	if (!c->dead)
		client_process(c);
	return 0;
}

void manager_reply_waiter(Manager *m, json_object *result, ControlError code, int error,
			  const char *message)
{
	ControlClient *c = m->waiter;
	json_object *reply;

	if (!c) {
		json_object_put(result);
		return;
	}
	/* control_reply_ok() takes result over */
	reply = result ? control_reply_ok(m->waiter_id, result) :
			 control_reply_error(m->waiter_id, code, error, message);
	m->waiter = NULL;
	json_object_put(m->waiter_id);
	m->waiter_id = NULL;
	m->waiter_progress = false;
	c->waiting = false;
	if (!client_send(c, reply))
		return;
	/*
	 * Pipelined requests that waited behind this one: handle them from
	 * the loop, not from here, which may be deep inside that client's own
	 * request handling.
	 */
	if (c->in_len > 0 && !c->defer &&
	    sd_event_add_defer(m->event, &c->defer, on_client_defer, c) < 0)
		log_oom();
	else
		(void)client_update_events(c);
}

typedef int (*start_fn)(Manager *m, const void *params, ControlError *code, char **message);

/* prepare and commit answer later, through manager_reply_waiter(). */
static bool start_deferred(ControlClient *c, const ControlRequest *req, start_fn fn, const void *params)
{
	Manager *m = c->manager;
	_cleanup_free_ char *message = NULL;
	ControlError code = CONTROL_ERROR_INTERNAL;
	int r;

	if (m->waiter)
		return client_error(c, req->id, CONTROL_ERROR_BAD_STATE, -EBUSY,
				    "Another prepare or commit is in progress");
	m->waiter = c;
	m->waiter_id = json_object_get(req->id);
	m->waiter_progress = req->progress;
	c->waiting = true;

	r = fn(m, params, &code, &message);
	if (r < 0) {
		manager_forget_client(m, c);
		c->waiting = false;
		return client_error(c, req->id, code, r, message ?: "Failed");
	}
	return true;
}

static int start_prepare(Manager *m, const void *p, ControlError *code, char **message)
{
	return manager_prepare(m, p, code, message);
}

static int start_commit(Manager *m, const void *p, ControlError *code, char **message)
{
	return manager_commit(m, p, code, message);
}

static bool handle_request(ControlClient *c, const ControlRequest *req)
{
	Manager *m = c->manager;
	_cleanup_free_ char *message = NULL;
	ControlError code;
	json_object *result;
	int r;

	switch (req->method) {
	case CONTROL_METHOD_PREPARE: {
		PrepareParams p = { 0 };
		bool alive;

		if (control_parse_prepare(req->params, &p, &message) < 0)
			return client_error(c, req->id, CONTROL_ERROR_INVALID_REQUEST, 0, message);
		alive = start_deferred(c, req, start_prepare, &p);
		prepare_params_done(&p);
		return alive;
	}
	case CONTROL_METHOD_COMMIT: {
		CommitParams p = { 0 };

		if (control_parse_commit(req->params, &p, &message) < 0)
			return client_error(c, req->id, CONTROL_ERROR_INVALID_REQUEST, 0, message);
		return start_deferred(c, req, start_commit, &p);
	}
	case CONTROL_METHOD_RELEASE: {
		ReleaseParams p = { 0 };

		if (control_parse_release(req->params, &p, &message) < 0)
			return client_error(c, req->id, CONTROL_ERROR_INVALID_REQUEST, 0, message);
		r = manager_release_vmm(m, p.vm_id, &code, &message);
		if (r < 0) {
			release_params_done(&p);
			return client_error(c, req->id, code, r, message);
		}
		result = json_object_new_object();
		json_object_object_add(result, "vm_id", json_object_new_string(p.vm_id));
		json_object_object_add(result, "released", json_object_new_boolean(true));
		release_params_done(&p);
		return client_send(c, control_reply_ok(req->id, result));
	}
	default:
		break;
	}

	if (control_parse_no_params(req->params, &message) < 0)
		return client_error(c, req->id, CONTROL_ERROR_INVALID_REQUEST, 0, message);

	switch (req->method) {
	case CONTROL_METHOD_STATUS:
		result = manager_status_json(m);
		break;
	case CONTROL_METHOD_LIST:
		result = manager_list_json(m);
		break;
	case CONTROL_METHOD_REPORT:
		result = json_object_new_object();
		json_object_object_add(result, "report", manager_report_json(m));
		break;
	case CONTROL_METHOD_SUBSCRIBE:
		c->subscribed = true;
		result = json_object_new_object();
		json_object_object_add(result, "subscribed", json_object_new_boolean(true));
		break;
	case CONTROL_METHOD_ABORT: {
		const char *id;

		if (m->state == UPDATE_IDLE && manager_count_held(m, false) > 0) {
			result = json_object_new_object();
			json_object_object_add(result, "update_id", NULL);
			json_object_object_add(result, "state", json_object_new_string("idle"));
			json_object_object_add(result, "released_sessions",
					       json_object_new_int((int)manager_release_held(m, true)));
			break;
		}
		if (!m->update || !update_state_abortable(m->state))
			return client_error(c, req->id, CONTROL_ERROR_BAD_STATE, -EBUSY,
					    m->state == UPDATE_IDLE ? "Nothing to abort" :
					    "The update is past the point of no return");
		result = json_object_new_object();
		id = m->update->id;
		json_object_object_add(result, "update_id", json_object_new_string(id));
		manager_abort(m, CONTROL_ERROR_ABORTED, -ECANCELED, "Aborted by uid %u (pid %d)",
			      c->cred.uid, (int)c->cred.pid);
		json_object_object_add(result, "state", json_object_new_string(update_state_to_string(m->state)));
		break;
	}
	default:
		return client_error(c, req->id, CONTROL_ERROR_UNKNOWN_METHOD, 0, "Unknown method");
	}
	return client_send(c, control_reply_ok(req->id, result));
}

/* Handle every complete line in the buffer, unless a deferred request holds the queue. */
static void client_process(ControlClient *c)
{
	while (!c->waiting && !c->closing) {
		ControlRequest req = { 0 };
		_cleanup_free_ char *message = NULL, *line = NULL;
		ControlError code;
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t line_len;

		if (!nl) {
			if (c->in_len == sizeof(c->in)) {
				client_refuse(c, CONTROL_ERROR_TOO_LARGE, -EMSGSIZE,
					      "Request larger than 64 KiB");
				return;
			}
			break;
		}
		line_len = (size_t)(nl - c->in);
		/* take the line out first: handling it may send, free c, or come back here */
		line = malloc(line_len + 1);
		if (line) {
			memcpy(line, c->in, line_len);
			line[line_len] = '\0';
		}
		memmove(c->in, nl + 1, c->in_len - line_len - 1);
		c->in_len -= line_len + 1;
		if (!line) {
			client_kill(c);
			return;
		}

		if (control_request_parse(line, line_len, &req, &code, &message) < 0)
			(void)client_error(c, req.id, code, 0, message ?: "Invalid request");
		else
			(void)handle_request(c, &req);
		control_request_done(&req);
		if (c->dead)
			return;
	}
	(void)client_update_events(c);
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ControlClient *c = userdata;
	ssize_t n;

	if (revents & EPOLLOUT) {
		if (client_flush(c) < 0) {
			client_kill(c);
			return 0;
		}
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->waiting || c->closing)
		return 0;

	n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		client_kill(c);
		return 0;
	}
	c->in_len += (size_t)n;
	client_process(c);
	return 0;
}

int manager_control_accept(Manager *m, int listen_fd)
{
	ControlClient *c;
	int fd, r;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return errno == EAGAIN ? 0 : log_warning_errno(errno, "accept() on the control socket: %m");

	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return log_oom();
	}
	c->manager = m;
	c->fd = fd;
	c->next = m->clients;
	if (m->clients)
		m->clients->prev = c;
	m->clients = c;
	m->n_clients++;

	r = socket_peer_cred(fd, &c->cred);
	if (r >= 0)
		r = sd_event_add_io(m->event, &c->io, fd, EPOLLIN, on_client_io, c);
	if (r < 0) {
		client_free(c);
		return log_warning_errno(r, "Cannot set up a control client: %m");
	}
	(void)sd_event_source_set_description(c->io, "control-client");

	r = socket_peer_authorized(fd, m->config.group);
	if (r <= 0) {
		log_notice("Refused control client uid %u pid %d", c->cred.uid, (int)c->cred.pid);
		client_refuse(c, CONTROL_ERROR_PERMISSION_DENIED, -EACCES,
			      "Permission denied: root or the configured group only");
		return 0;
	}
	if (m->n_clients > m->config.max_clients) {
		client_refuse(c, CONTROL_ERROR_TOO_MANY_CLIENTS, -EUSERS, "Too many clients");
		return 0;
	}
	return 0;
}
