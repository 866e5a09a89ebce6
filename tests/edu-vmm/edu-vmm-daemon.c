/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Daemon mode (--vm-id): a VMM of liveupdated with a passed-through device.
 * A fresh VM passes edu through (vm_attach()) and DMAs a round: one at
 * start, one per SIGUSR1. Started again after the kexec with the same id,
 * it takes the running device over at RESTORE instead. The daemon's
 * events go to edu-vmm-update.c and edu-vmm-restore.c; SIGUSR2 releases a
 * RESUMED held by --hold-resume; SIGTERM, SIGINT and the daemon's hangup
 * end it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "edu-vmm-ram.h"
#include "edu-vmm.h"
#include "edu.h"
#include "events.h"

/* SIGUSR1, and once at start: a round RAM to edu to RAM, if the VM runs. */
static int round_dma(EduVmm *e)
{
	char step[32];

	if (!e->attached || e->state != VM_RUNNING) {
		emit("{\"event\":\"round-skipped\",\"state\":\"%s\"}",
		     !e->attached ? "not-attached" : e->state == VM_FROZEN ? "frozen" : "held");
		return RUN_ON;
	}
	e->rounds++;
	snprintf(step, sizeof(step), "round-%u", e->rounds);
	memset(e->p.ram + ROUND_DST, 0, EDU_TRANSFER);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return event_dma(&e->p, step, ROUND_SRC, ROUND_DST, SEED_ROUND(e->rounds)) < 0 ?
		       EXIT_ERROR :
		       RUN_ON;
}

/* A fresh VM: the device passed through, a first round. */
static int boot(EduVmm *e)
{
	if (vm_attach(&e->p, e->slot) < 0)
		return EXIT_ERROR;
	e->attached = true;
	e->state = VM_RUNNING;
	return round_dma(e);
}

static int handle_event(EduVmm *e, const struct lu_vmm_event *ev)
{
	switch (ev->type) {
	case LU_VMM_EVENT_PREPARE:
		return on_prepare(e, ev);
	case LU_VMM_EVENT_FREEZE:
		return on_freeze(e, ev);
	case LU_VMM_EVENT_THAW:
		return on_thaw(e, ev);
	case LU_VMM_EVENT_RESTORE:
		return on_restore(e, ev);
	case LU_VMM_EVENT_HANGUP:
		emit("{\"event\":\"hangup\"}");
		return EXIT_HANGUP;
	default:
		return RUN_ON;
	}
}

/* Everything the library has, including what it queued while waiting for replies. */
static int dispatch(EduVmm *e)
{
	struct lu_vmm_event ev;
	int k, code;

	for (;;) {
		k = lu_vmm_next_event(e->vmm, &ev);
		if (k == 0)
			return RUN_ON;
		if (k == -EBADMSG) {
			event_error("the daemon sent a malformed message", EBADMSG);
			continue;
		}
		if (k < 0) {
			event_error("reading from the daemon", -k);
			return EXIT_ERROR;
		}
		code = handle_event(e, &ev);
		if (code != RUN_ON)
			return code;
	}
}

/* SIGUSR1: a round; SIGUSR2: RESUMED, if held; SIGTERM, SIGINT: the end. */
static int on_signal(EduVmm *e, int sig)
{
	switch (sig) {
	case SIGUSR1:
		return round_dma(e);
	case SIGUSR2:
		if (e->state != VM_HELD)
			return RUN_ON;
		return vm_resume(e);
	default:
		emit("{\"event\":\"exit\",\"signal\":\"%s\",\"rounds\":%u}", sigabbrev_np(sig),
		     e->rounds);
		return EXIT_OK;
	}
}

int run_daemon_mode(EduVmm *e)
{
	struct lu_vmm_event first;
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	sigset_t signals;
	int sfd, k, code;

	/* blocked before anything can send them, and read from a signalfd */
	sigemptyset(&signals);
	sigaddset(&signals, SIGUSR1);
	sigaddset(&signals, SIGUSR2);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	sfd = signalfd(-1, &signals, SFD_CLOEXEC);
	if (sfd < 0) {
		event_error("signalfd", errno);
		return EXIT_ERROR;
	}

	k = lu_vmm_connect(e->socket, e->vm_id, &e->vmm);
	if (k < 0) {
		event_error("connect to liveupdated", -k);
		return EXIT_ERROR;
	}
	/* the library holds connect back until an announced RESTORE is here */
	k = lu_vmm_next_event(e->vmm, &first);
	if (k < 0) {
		event_error("reading from the daemon", -k);
		return EXIT_ERROR;
	}
	emit("{\"event\":\"registered\",\"vm_id\":\"%s\",\"restore\":%s}", e->vm_id,
	     first.type == LU_VMM_EVENT_RESTORE ? "true" : "false");

	code = first.type == LU_VMM_EVENT_RESTORE ? RUN_ON : boot(e);
	if (code == RUN_ON)
		code = handle_event(e, &first);
	if (code == RUN_ON)
		code = dispatch(e);

	while (code == RUN_ON) {
		pfd[0] = (struct pollfd){ .fd = lu_vmm_get_fd(e->vmm), .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			event_error("poll", errno);
			return EXIT_ERROR;
		}
		if (pfd[1].revents) {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			code = on_signal(e, (int)si.ssi_signo);
			/* a RESUMED may have queued events */
			if (code == RUN_ON)
				code = dispatch(e);
			continue;
		}
		if (pfd[0].revents)
			code = dispatch(e);
	}
	return code;
}
