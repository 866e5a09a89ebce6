/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The daemon's side of the VMM protocol (include/liveupdate/vmm-protocol.h).
 *
 * A Vmm exists from HELLO until the VMM leaves while nothing is in flight.
 * Across the kexec it lives on without a connection: the restarted daemon
 * recreates it from the manifest in state AWAITING, and the restarted VMM
 * claims it with a HELLO carrying the same VM id from the same uid.
 *
 * Every message is checked by vmm_message_check() before it is looked at;
 * a malformed one, or one that makes no sense in the VMM's state, ends the
 * connection, which is exactly what a VMM crash does too, so both take the
 * same, tested path: manager_vmm_lost().
 *
 * Connections are watched edge-triggered. Before each dispatch sd-event
 * asks epoll again for every ready source; level-triggered, a thousand
 * VMMs answering FREEZE at once would have each of those thousand
 * dispatches walk the thousand sockets again, quadratic inside the
 * blackout. A dispatch reads its socket until it is empty, or re-arms the
 * edge after VMM_PACKETS_PER_DISPATCH packets so that the others get
 * their turn first.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "luo.h"
#include "manager.h"
#include "modules.h"
#include "socket-util.h"
#include "string-util.h"
#include "vmm-message.h"

#define VMM_PACKETS_PER_DISPATCH 8

static Vmm *vmm_new(Manager *m)
{
	Vmm *v, **a;

	a = reallocarray(m->vmms, m->n_vmms + 1, sizeof(Vmm *));
	if (!a)
		return NULL;
	m->vmms = a;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->manager = m;
	v->fd = -1;
	v->session_fd = -1;
	v->state = VMM_REGISTERED;
	m->vmms[m->n_vmms++] = v;
	return v;
}

static void vmm_disconnect(Vmm *v)
{
	v->io = sd_event_source_disable_unref(v->io);
	v->fd = safe_close(v->fd);
}

void vmm_drop_session(Vmm *v)
{
	if (v->session_fd < 0)
		return;
	manager_fdstore_remove(v->manager, v->session_name);
	v->session_fd = safe_close(v->session_fd);
	v->session_handed_out = false;
	free(v->tokens);
	v->tokens = NULL;
	v->n_tokens = 0;
}

void vmm_remove(Vmm *v)
{
	Manager *m = v->manager;

	if (v->vm_id[0])
		m->n_in_state[v->state]--;
	vmm_disconnect(v);
	vmm_drop_session(v);
	vmm_forget_devices(v);
	/* from the end: the one removed is most often the newest (a connection
	 * that claimed its record) or, at exit, the last */
	for (size_t i = m->n_vmms; i > 0; i--)
		if (m->vmms[i - 1] == v) {
			m->vmms[i - 1] = m->vmms[--m->n_vmms];
			break;
		}
	free(v);
}

void vmm_set_state(Vmm *v, VmmState s)
{
	if (v->state == s)
		return;
	log_debug("VMM %s: %s -> %s", v->vm_id, vmm_state_to_string(v->state), vmm_state_to_string(s));
	if (v->vm_id[0]) {
		v->manager->n_in_state[v->state]--;
		v->manager->n_in_state[s]++;
	}
	v->state = s;
	if (v->vm_id[0])
		manager_emit_vmm(v->manager, v);
}

Vmm *manager_find_vmm(Manager *m, const char *vm_id)
{
	for (size_t i = 0; i < m->n_vmms; i++)
		if (strcmp(m->vmms[i]->vm_id, vm_id) == 0)
			return m->vmms[i];
	return NULL;
}

size_t manager_count_vmms(Manager *m, VmmState s)
{
	return m->n_in_state[s];
}

/* From HELLO on, a VMM counts in its state. */
static void vmm_set_id(Vmm *v, const char *vm_id)
{
	strcpy(v->vm_id, vm_id);
	v->manager->n_in_state[v->state]++;
}

int manager_add_absent_vmm(Manager *m, const ManifestVm *mvm, VmmState s, int session_fd, Vmm **ret)
{
	Vmm *v = vmm_new(m);

	if (!v)
		return -ENOMEM;
	v->state = s;
	v->absent = s != VMM_AWAITING;
	vmm_set_id(v, mvm->vm_id);
	strcpy(v->session_name, mvm->session);
	v->cred.uid = mvm->uid;
	v->cred.pid = 0;
	if (mvm->n_tokens > 0) {
		v->tokens = memdup(mvm->tokens, mvm->n_tokens * sizeof(uint64_t));
		if (!v->tokens)
			goto fail;
	}
	v->n_tokens = mvm->n_tokens;
	if (mvm->n_devices > 0) {
		v->devices = memdup(mvm->devices, mvm->n_devices * sizeof(PciSlot));
		if (!v->devices)
			goto fail;
	}
	v->n_devices = mvm->n_devices;
	/* last: on failure the caller keeps the fd, and it has one owner */
	v->session_fd = session_fd;
	*ret = v;
	return 0;
fail:
	vmm_remove(v);
	return -ENOMEM;
}

static bool vmm_absent(const Vmm *v)
{
	return v->vm_id[0] && v->fd < 0 && v->state >= VMM_PREPARING && v->state <= VMM_FROZEN;
}

size_t manager_count_absent(Manager *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_vmms; i++)
		n += vmm_absent(m->vmms[i]);
	return n;
}

const char *manager_vmm_ids(Manager *m, bool (*match)(const Vmm *v, const void *arg),
			    const void *arg, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->n_vmms && off + 1 < size; i++) {
		int n;

		if (!m->vmms[i]->vm_id[0] || !match(m->vmms[i], arg))
			continue;
		n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", m->vmms[i]->vm_id);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (off + 1 >= size && size > 4)
		strcpy(buf + size - 4, "...");
	return buf;
}

static bool vmm_absent_match(const Vmm *v, const void *arg)
{
	return vmm_absent(v);
}

const char *manager_absent_vmms(Manager *m, char *buf, size_t size)
{
	return manager_vmm_ids(m, vmm_absent_match, NULL, buf, size);
}

static int reply(Vmm *v, uint32_t seq, int error, uint32_t flags, int fd)
{
	int r = vmm_send_reply(v->fd, seq, error, flags, fd);

	if (r < 0)
		log_warning_errno(r, "VMM %s: cannot send reply: %m", v->vm_id);
	return r;
}

static int token_known(Vmm *v, uint64_t token)
{
	for (size_t i = 0; i < v->n_tokens; i++)
		if (v->tokens[i] == token)
			return 1;
	return 0;
}

static int add_token(Vmm *v, uint64_t token)
{
	uint64_t *a = reallocarray(v->tokens, v->n_tokens + 1, sizeof(uint64_t));

	if (!a)
		return -ENOMEM;
	v->tokens = a;
	v->tokens[v->n_tokens++] = token;
	return 0;
}

/* Checks common to PRESERVE_FD and DECLARE_TOKEN. */
static int check_token_request(Vmm *v, uint64_t token)
{
	if (v->state != VMM_PREPARING || v->session_fd < 0)
		return -EBUSY;
	if (v->n_tokens >= v->manager->config.max_fds_per_vmm)
		return -E2BIG;
	if (token_known(v, token))
		return -EEXIST;
	return 0;
}

static int handle_preserve_fd(Vmm *v, const struct lu_vmm_token_msg *msg, int fd)
{
	Manager *m = v->manager;
	const char *module = NULL;
	PciSlot slot;
	int device, r;

	r = check_token_request(v, msg->token);
	if (r < 0)
		return r;
	/* a passed-through device: which one, for the coverage check and the next daemon */
	device = vmm_device_of_fd(v, fd, slot);
	if (device < 0)
		return device;

	/* The kernel decides what it can preserve; we only learn what it will need. */
	if (modules_for_fd(fd, &module) < 0)
		module = NULL;

	r = luo_preserve_fd(v->session_fd, fd, msg->token);
	if (r < 0) {
		log_info_errno(r, "VMM %s: preserving token %llu failed: %m", v->vm_id,
			       (unsigned long long)msg->token);
		return r;
	}
	r = add_token(v, msg->token);
	if (r < 0)
		return r;
	if (module && manifest_add_module(m->update->manifest, module) < 0)
		log_warning("Cannot record module %s for VMM %s", module, v->vm_id);
	if (device) {
		r = vmm_add_device(v, slot);
		if (r < 0)
			return r;
		log_info("VMM %s preserved device %s (token %llu)", v->vm_id, slot,
			 (unsigned long long)msg->token);
	}
	return 0;
}

static int handle_declare_token(Vmm *v, const struct lu_vmm_token_msg *msg)
{
	int r = check_token_request(v, msg->token);

	if (r < 0)
		return r;
	if (!v->session_handed_out)
		return -EBADFD;
	return add_token(v, msg->token);
}

static void handle_prepare_done(Vmm *v, uint32_t seq)
{
	if (v->state != VMM_PREPARING) {
		reply(v, seq, -EBUSY, 0, -1);
		return;
	}
	if (reply(v, seq, 0, 0, -1) < 0)
		return;
	vmm_set_state(v, VMM_PREPARED);
	manager_update_progress(v->manager);
}

/* A new connection said HELLO: register it, or let it claim its restore. */
static int handle_hello(Vmm *v, const struct lu_vmm_hello *hello)
{
	Manager *m = v->manager;
	Vmm *old;
	uint32_t flags = 0;
	int r;

	if (hello->version < LU_VMM_PROTOCOL_VERSION_MIN || hello->version > LU_VMM_PROTOCOL_VERSION)
		return reply(v, hello->hdr.seq, -EPROTONOSUPPORT, 0, -1), -EPROTONOSUPPORT;
	v->version = hello->version;

	old = manager_find_vmm(m, hello->vm_id);
	if (old && old->state == VMM_RELEASED && old->fd < 0) {
		/* its memory is gone: it starts over as a new VM */
		vmm_remove(old);
		old = NULL;
	}
	if (old && old->fd >= 0)
		return reply(v, hello->hdr.seq, -EEXIST, 0, -1), -EEXIST;

	/* a VMM of a resumed update that speaks only version 1 cannot take it up */
	if (old && vmm_absent(old) && v->version < 2)
		return reply(v, hello->hdr.seq, -EPROTONOSUPPORT, 0, -1), -EPROTONOSUPPORT;

	if (old) {
		/* Only the owner of the VM comes back for its memory. */
		if (v->cred.uid != 0 && v->cred.uid != old->cred.uid)
			return reply(v, hello->hdr.seq, -EPERM, 0, -1), -EPERM;

		/* Move the connection over to the record the manifest created. */
		old->fd = TAKE_FD(v->fd);
		old->io = TAKE_PTR(v->io);
		old->cred = v->cred;
		old->version = v->version;
		old->absent = false;
		(void)sd_event_source_set_userdata(old->io, old);
		vmm_remove(v);

		if (old->state == VMM_PREPARED)
			return manager_vmm_reconnected(m, old, hello->hdr.seq);
		r = reply(old, hello->hdr.seq, 0, LU_VMM_REPLY_RESTORE_PENDING, -1);
		if (r < 0)
			return r;
		log_info("VMM %s is back (pid %d)", old->vm_id, (int)old->cred.pid);
		return manager_restore_vmm(m, old);
	}

	/* A VMM started inside the freeze window would not be carried over. */
	if (m->state == UPDATE_FREEZING || m->state == UPDATE_FROZEN || m->state == UPDATE_REBOOTING)
		return reply(v, hello->hdr.seq, -EBUSY, 0, -1), -EBUSY;

	vmm_set_id(v, hello->vm_id);
	if (m->state == UPDATE_PREPARING || m->state == UPDATE_PREPARED)
		flags |= LU_VMM_REPLY_PREPARE_PENDING;
	r = reply(v, hello->hdr.seq, 0, flags, -1);
	if (r < 0)
		return r;
	log_info("VMM %s registered (pid %d, uid %u)", v->vm_id, (int)v->cred.pid, v->cred.uid);
	manager_emit_vmm(m, v);

	if (flags & LU_VMM_REPLY_PREPARE_PENDING) {
		/* A late joiner: it must preserve before commit can go on. */
		if (m->state == UPDATE_PREPARED)
			(void)manager_set_state(m, UPDATE_EVENT_PREPARE);
		r = vmm_prepare_session(v);
		if (r < 0)
			return r;
	}
	manager_notify_status(m);
	return 0;
}

static int dispatch(Vmm *v, const void *buf, int type, int fd)
{
	const struct lu_vmm_header *hdr = buf;
	const struct lu_vmm_token_msg *tmsg = buf;
	Manager *m = v->manager;

	/* HELLO first, and only once. */
	if ((type == LU_VMM_MSG_HELLO) != !v->vm_id[0])
		return -EPROTO;

	switch (type) {
	case LU_VMM_MSG_HELLO:
		return handle_hello(v, buf);

	case LU_VMM_MSG_PRESERVE_FD:
		return reply(v, hdr->seq, handle_preserve_fd(v, tmsg, fd), 0, -1);

	case LU_VMM_MSG_GET_SESSION:
		if (v->state != VMM_PREPARING || v->session_fd < 0)
			return reply(v, hdr->seq, -EBUSY, 0, -1);
		v->session_handed_out = true;
		return reply(v, hdr->seq, 0, 0, v->session_fd);

	case LU_VMM_MSG_DECLARE_TOKEN:
		return reply(v, hdr->seq, handle_declare_token(v, tmsg), 0, -1);

	case LU_VMM_MSG_PREPARE_DONE:
		handle_prepare_done(v, hdr->seq);
		return 0;

	case LU_VMM_MSG_FROZEN:
		/* A FROZEN that crossed our THAW is stale, not an error. */
		if (v->state != VMM_FREEZING)
			return 0;
		v->frozen_us = manager_now();
		vmm_set_state(v, VMM_FROZEN);
		manager_update_progress(m);
		return 0;

	case LU_VMM_MSG_RESUMED:
		if (v->state != VMM_RESTORED)
			return reply(v, hdr->seq, -EBUSY, 0, -1);
		return reply(v, hdr->seq, manager_vmm_resumed(m, v), 0, -1);
	}
	return -EPROTO;
}

static void vmm_lost(Vmm *v, int error)
{
	if (v->vm_id[0])
		log_info_errno(error, "VMM %s disconnected (%s): %m", v->vm_id,
			       vmm_state_to_string(v->state));
	vmm_disconnect(v);
	if (!v->vm_id[0]) {
		vmm_remove(v);
		return;
	}
	manager_vmm_lost(v->manager, v);
}

/* One packet read and acted on: 1 if the socket may hold more, 0 if it is empty or gone. */
static int vmm_read_packet(sd_event_source *s, int fd)
{
	/* the connection moves to another record when a VMM claims its restore */
	Vmm *v = sd_event_source_get_userdata(s);
	_Alignas(8) uint8_t buf[LU_VMM_MSG_MAX];
	int fds[1] = { -1 };
	size_t n_fds = ARRAY_SIZE(fds);
	ssize_t n;
	int type, r;

	n = socket_recv_fds(fd, buf, sizeof(buf), fds, &n_fds);
	if (n == -EINTR)
		return 1;
	if (n == -EAGAIN)
		return 0;
	if (n <= 0) {
		vmm_lost(v, n < 0 ? (int)n : -ECONNRESET);
		return 0;
	}

	type = vmm_message_check(buf, (size_t)n, n_fds, false);
	if (type < 0) {
		log_warning("VMM %s: malformed message (%zd bytes), disconnecting",
			    v->vm_id[0] ? v->vm_id : "(new)", n);
		close_many(fds, n_fds);
		vmm_lost(v, -EBADMSG);
		return 0;
	}

	r = dispatch(v, buf, type, n_fds ? fds[0] : -1);
	close_many(fds, n_fds);
	if (r < 0 && r != -ENOMEM) {
		vmm_lost(sd_event_source_get_userdata(s), r);
		return 0;
	}
	return 1;
}

static int on_vmm_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	for (unsigned i = 0; i < VMM_PACKETS_PER_DISPATCH; i++)
		if (vmm_read_packet(s, fd) == 0)
			return 0;
	/* more may wait: a fresh edge brings this connection back after the others */
	(void)sd_event_source_set_io_events(s, EPOLLIN | EPOLLET);
	return 0;
}

int manager_vmm_accept(Manager *m, int listen_fd)
{
	_cleanup_close_ int fd = -1;
	Vmm *v;
	int r;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return errno == EAGAIN ? 0 : log_warning_errno(errno, "accept() on the VMM socket: %m");

	/* Connections count before HELLO, so idle sockets cannot exhaust us either. */
	if (m->n_vmms >= m->config.max_vmms) {
		(void)vmm_send_reply(fd, 0, -EUSERS, 0, -1);
		return log_warning_errno(EUSERS, "Refused a VMM connection: limit of %u reached",
					 m->config.max_vmms);
	}

	/* Refuse strangers at once: a silent one must not hold a slot that a
	 * VMM coming back for its memory after the kexec needs. */
	r = socket_peer_authorized(fd, m->config.group);
	if (r <= 0) {
		struct ucred cred = {};

		(void)socket_peer_cred(fd, &cred);
		(void)vmm_send_reply(fd, 0, r < 0 ? r : -EACCES, 0, -1);
		return log_notice_errno(r < 0 ? r : EACCES, "Refused VMM connection of uid %u (pid %d): %m",
					cred.uid, (int)cred.pid);
	}

	v = vmm_new(m);
	if (!v)
		return log_oom();
	r = socket_peer_cred(fd, &v->cred);
	if (r >= 0)
		r = sd_event_add_io(m->event, &v->io, fd, EPOLLIN | EPOLLET, on_vmm_io, v);
	if (r < 0) {
		vmm_remove(v);
		return log_warning_errno(r, "Cannot watch a VMM connection: %m");
	}
	(void)sd_event_source_set_description(v->io, "vmm");
	v->fd = TAKE_FD(fd);
	return 0;
}
