/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Sessions a previous instance of the daemon left in systemd's fd store.
 *
 * Holding them open is what makes a daemon restart harmless: closing the
 * last copy of an outgoing session cancels it, closing a retrieved one
 * finishes it and frees every file nobody retrieved. So they are held
 * until something decides:
 *
 *   - incoming sessions (the previous instance died while restoring after
 *     the kexec) are taken back by the restore, which picks the update up;
 *     they are never released by an abort: they carry guest memory that
 *     only a restored VMM or an explicit release may let go;
 *   - outgoing sessions (it died before the jump) are taken back by a
 *     prepared update this instance resumes, or cancelled when it rolls
 *     the update back (manager-resume.c); without update.json to say what
 *     they are, they stay held until an operator's abort cancels them,
 *     like any abort before the jump, and unloads the kexec image.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "kexec.h"
#include "log.h"
#include "luo.h"
#include "manager.h"

int manager_hold_fd(Manager *m, int fd, const char *name)
{
	HeldSession *a, *h;
	int r;

	a = reallocarray(m->held, m->n_held + 1, sizeof(HeldSession));
	if (!a)
		return -ENOMEM;
	m->held = a;
	h = &m->held[m->n_held];
	*h = (HeldSession){ .fd = fd };
	h->name = strdup(name);
	if (!h->name)
		return -ENOMEM;

	r = luo_session_is_incoming(fd);
	if (r < 0) {
		/* not a session we understand: keep it, and treat it as precious */
		log_warning_errno(r, "Held fd '%s' does not answer as a LUO session: %m", name);
		r = 1;
	}
	h->incoming = r;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	m->n_held++;
	log_warning("Holding %s session '%s' from the fd store of a previous instance",
		    h->incoming ? "incoming" : "outgoing", name);
	return 0;
}

static void held_drop(Manager *m, size_t i)
{
	free(m->held[i].name);
	m->held[i] = m->held[--m->n_held];
}

int manager_take_held(Manager *m, const char *name, bool incoming)
{
	for (size_t i = 0; i < m->n_held; i++) {
		int fd = m->held[i].fd;

		/* the restore takes retrieved ones, a resumed prepared update outgoing ones */
		if (m->held[i].incoming != incoming || strcmp(m->held[i].name, name) != 0)
			continue;
		held_drop(m, i);
		return fd;
	}
	return -ENOENT;
}

size_t manager_release_held(Manager *m, bool unload)
{
	size_t n = 0;
	int r;

	for (size_t i = m->n_held; i > 0; i--) {
		HeldSession *h = &m->held[i - 1];

		if (h->incoming)
			continue;
		log_notice("Cancelling held session '%s'", h->name);
		manager_fdstore_remove(m, h->name);
		safe_close(h->fd);
		held_drop(m, i - 1);
		n++;
	}
	if (n > 0 && unload) {
		/* the interrupted update had loaded its kernel too */
		r = kexec_unload();
		if (r < 0)
			log_warning_errno(r, "Cannot unload the next kernel: %m");
	}
	return n;
}

size_t manager_count_held(Manager *m, bool incoming)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_held; i++)
		n += m->held[i].incoming == incoming;
	return n;
}

json_object *manager_held_json(Manager *m)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < m->n_held; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(m->held[i].name));
		json_object_object_add(o, "incoming", json_object_new_boolean(m->held[i].incoming));
		json_object_array_add(a, o);
	}
	return a;
}

void manager_held_free(Manager *m)
{
	for (size_t i = 0; i < m->n_held; i++) {
		safe_close(m->held[i].fd);
		free(m->held[i].name);
	}
	free(m->held);
	m->held = NULL;
	m->n_held = 0;
}
