/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "events.h"
#include "luo.h"
#include "own-session.h"

int own_session_create(const char *name)
{
	int luo = luo_open(NULL), session;

	session = luo < 0 ? luo : luo_create_session(luo, name);
	if (session < 0) {
		event_error("create a LUO session", -session);
		return -1;
	}
	return session;
}

int own_session_retrieve_ram(const char *name, uint64_t token, Passthrough *p)
{
	int luo = luo_open(NULL), session, r;

	*p = (Passthrough){ .iommufd = -1, .device_fd = -1, .ram_fd = -1 };
	session = luo < 0 ? luo : luo_retrieve_session(luo, name);
	p->ram_fd = session < 0 ? session : luo_retrieve_fd(session, token);
	if (p->ram_fd < 0) {
		event_error("retrieve guest RAM", -p->ram_fd);
		return -1;
	}
	r = passthrough_mmap_ram(p);
	if (r < 0) {
		event_error("map guest RAM", -r);
		return -1;
	}
	return session;
}
