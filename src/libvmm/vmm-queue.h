/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Daemon messages that arrive while libliveupdate-vmm waits for a reply are
 * kept here, checked and with their fd, until lu_vmm_next_event() hands
 * them out in arrival order. The queue is bounded: the daemon sends at most
 * a handful of messages per update, more than VMM_QUEUE_MAX unanswered ones
 * means it is broken.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liveupdate/vmm-protocol.h>

#define VMM_QUEUE_MAX 8

struct vmm_packet {
	size_t len;
	int fd; /* -1: none */
	union {
		struct lu_vmm_header hdr;
		uint64_t align;
		char buf[LU_VMM_MSG_MAX];
	} u;
};

struct vmm_queue {
	struct vmm_packet items[VMM_QUEUE_MAX];
	size_t head;
	size_t n;
};

/* Copy p in and take its fd (p->fd becomes -1). -ENOBUFS when full. */
int vmm_queue_push(struct vmm_queue *q, struct vmm_packet *p);
/* Move the oldest packet to *ret, fd included. false when empty. */
bool vmm_queue_pop(struct vmm_queue *q, struct vmm_packet *ret);
bool vmm_queue_contains(const struct vmm_queue *q, uint32_t type);
/* Drop everything, closing the fds. */
void vmm_queue_clear(struct vmm_queue *q);
