/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "control-protocol.h"
#include "log.h"
#include "manager.h"
#include "socket-util.h"

usec_t manager_now(void)
{
	return now_usec(CLOCK_REALTIME);
}

int manager_new(const Config *config, Manager **ret)
{
	_cleanup_(manager_freep) Manager *m = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->config = *config;
	m->vmm_listen_fd = -1;
	m->control_listen_fd = -1;
	m->state = UPDATE_IDLE;
	m->under_systemd = !!getenv("NOTIFY_SOCKET");

	r = sd_event_default(&m->event);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(m);
	return 0;
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;

	m->exiting = true;
	manager_control_free_all(m);
	manager_held_free(m);
	while (m->n_vmms > 0)
		vmm_remove(m->vmms[m->n_vmms - 1]);
	free(m->vmms);
	m->update = update_free(m->update);
	json_object_put(m->last_report);
	json_object_put(m->waiter_id);

	sd_event_source_disable_unref(m->vmm_listen_source);
	sd_event_source_disable_unref(m->control_listen_source);
	safe_close(m->vmm_listen_fd);
	safe_close(m->control_listen_fd);
	sd_event_unref(m->event);
	free(m);
	return NULL;
}

static int on_vmm_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return manager_vmm_accept(userdata, fd), 0;
}

static int on_control_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return manager_control_accept(userdata, fd), 0;
}

/*
 * Sockets come from systemd (names "vmm" and "control", see units/) or are
 * bound here. Session fds that systemd kept for us across a daemon restart
 * come the same way; they are held so a restart cancels nothing.
 */
/*
 * Listen on RUNTIME_DIR/name ourselves (no socket activation), 0660 and of
 * the --group: the group decides who may connect; SO_PEERCRED decides again
 * per request. (Socket units set SocketGroup= instead.)
 */
static int listen_in_runtime_dir(Manager *m, const char *name, int type, int *ret_fd)
{
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/%s", m->config.runtime_dir, name);
	r = socket_listen_unix(path, type, 0660, SOMAXCONN);
	if (r >= 0)
		*ret_fd = r;
	if (r >= 0 && m->config.group != (gid_t)-1 && chown(path, (uid_t)-1, m->config.group) < 0)
		r = negative_errno();
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %m", path);
	return 0;
}

static int manager_listen(Manager *m)
{
	char **names = NULL;
	int n, r;

	n = sd_listen_fds_with_names(true, &names);
	if (n < 0)
		return log_error_errno(n, "Failed to get fds from systemd: %m");

	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (strcmp(names[i], "vmm") == 0 && sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0)
			m->vmm_listen_fd = fd;
		else if (strcmp(names[i], "control") == 0 &&
			 sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0)
			m->control_listen_fd = fd;
		else {
			/* A session fd from the fd store: the previous instance died mid-update. */
			r = manager_hold_fd(m, fd, names[i]);
			if (r < 0)
				return log_error_errno(r, "Cannot hold fd '%s': %m", names[i]);
			continue;
		}
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);

	if (mkdir(m->config.runtime_dir, 0755) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create %s: %m", m->config.runtime_dir);

	if (m->vmm_listen_fd < 0) {
		r = listen_in_runtime_dir(m, LU_VMM_SOCKET_NAME, SOCK_SEQPACKET, &m->vmm_listen_fd);
		if (r < 0)
			return r;
	}
	if (m->control_listen_fd < 0) {
		r = listen_in_runtime_dir(m, CONTROL_SOCKET_NAME, SOCK_STREAM, &m->control_listen_fd);
		if (r < 0)
			return r;
	}

	r = sd_event_add_io(m->event, &m->vmm_listen_source, m->vmm_listen_fd, EPOLLIN, on_vmm_listen, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the VMM socket: %m");
	(void)sd_event_source_set_description(m->vmm_listen_source, "vmm-listen");
	/* Connections first: after the kexec every queued VMM is accepted, and so
	 * gets its RESTORE, before the sessions of those already resumed are
	 * finished, which only frees memory. */
	(void)sd_event_source_set_priority(m->vmm_listen_source, SD_EVENT_PRIORITY_IMPORTANT);
	r = sd_event_add_io(m->event, &m->control_listen_source, m->control_listen_fd, EPOLLIN,
			    on_control_listen, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the control socket: %m");
	(void)sd_event_source_set_description(m->control_listen_source, "control-listen");
	return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Manager *m = userdata;

	if (update_state_holds_sessions(m->state) && !m->under_systemd)
		log_warning("Exiting in state %s without an fd store: the kernel will %s the update's sessions",
			    update_state_to_string(m->state),
			    m->state >= UPDATE_RESTORING ? "finish" : "cancel");
	(void)sd_notify(false, "STOPPING=1");
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

int manager_start(Manager *m)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
	if (r < 0)
		return r;
	r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
	if (r < 0)
		return r;
	r = sd_event_set_watchdog(m->event, true);
	if (r < 0)
		return r;

	r = manager_listen(m);
	if (r < 0)
		return r;

	/* Before READY=1: a VMM that connects must find its restore already set up. */
	r = manager_restore_incoming(m);
	if (r < 0)
		log_error_errno(r, "Could not restore the incoming update: %m");
	/* else an update from before the kexec that a previous instance of this boot left */
	if (m->state == UPDATE_IDLE && !m->update)
		(void)manager_resume_interrupted(m);

	(void)sd_notify(false, "READY=1");
	manager_notify_status(m);
	log_info("liveupdated ready, state %s, sockets in %s", update_state_to_string(m->state),
		 m->config.runtime_dir);
	return 0;
}

int manager_run(Manager *m)
{
	return sd_event_loop(m->event);
}

void manager_notify_status(Manager *m)
{
	if (!m->under_systemd)
		return;
	(void)sd_notifyf(false, "STATUS=%s%s%s, %zu VMMs", update_state_to_string(m->state),
			 m->update ? " " : "", m->update ? m->update->id : "", m->n_vmms);
}

void manager_fdstore_add(Manager *m, int fd, const char *name)
{
	char msg[320];
	int r;

	if (!m->under_systemd || fd < 0)
		return;
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	r = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
	if (r < 0)
		log_warning_errno(r, "Failed to keep session %s in the fd store: %m", name);
}

void manager_fdstore_remove(Manager *m, const char *name)
{
	if (!m->under_systemd || m->exiting)
		return;
	(void)sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=%s", name);
}
