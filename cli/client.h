/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The client side of the control socket: one connection, requests written
 * as lines, replies and events read back line by line into a bounded buffer.
 */

#include <json-c/json.h>
#include <stdbool.h>

#include "macro.h"
#include "time-util.h"

#define CLIENT_LINE_MAX (16U * 1024 * 1024) /* a report or list may be large */
#define CLIENT_NO_TIMEOUT 0

typedef struct Client Client;

/* Called for each event that arrives before the reply; a negative return stops the call. */
typedef int (*client_event_fn)(json_object *event, void *userdata);

int client_connect(const char *path, Client **ret);
Client *client_free(Client *c);
DEFINE_FREEP(Client, client_free)

/*
 * client_call() - send one request and wait for its reply, handing events to
 * on_event (may be NULL). params may be NULL. timeout_us: CLIENT_NO_TIMEOUT
 * waits as long as the daemon takes. Returns 0 and the whole reply (ok or
 * not) in *ret_reply, or: -ECONNRESET when the daemon closed the connection,
 * -ETIMEDOUT, -EBADMSG for a message that is not a valid reply, -EMSGSIZE for
 * a line over CLIENT_LINE_MAX, -EINTR when a signal interrupted the wait, or
 * another -errno from the socket.
 */
int client_call(Client *c, const char *method, json_object *params, bool progress,
		usec_t timeout_us, client_event_fn on_event, void *userdata,
		json_object **ret_reply);

/* Read the next message (an event after "subscribe"); errors as client_call(). */
int client_read(Client *c, usec_t timeout_us, json_object **ret);
