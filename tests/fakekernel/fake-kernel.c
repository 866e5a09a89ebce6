/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake of the kernel's Live Update Orchestrator (/dev/liveupdate and its
 * session fds), kexec_file_load(2) and reboot(LINUX_REBOOT_CMD_KEXEC), for
 * tests. Processes reach it through the LD_PRELOAD shim fakeluo-preload.c.
 * The rules and errnos follow Linux 7.2's kernel/liveupdate/luo_core.c,
 * luo_session.c, luo_file.c, mm/memfd_luo.c and kernel/kexec_file.c; see
 * README.md for what differs.
 *
 *   fake-kernel --socket PATH --state-file PATH [--fail-freeze ERRNO]
 *               [--state-idle-ms MS]
 *   fake-kernel --control PATH COMMAND [ARG]
 *
 * The server holds a copy of every preserved fd, so preserved memfds
 * outlive every client process across a simulated kexec. Single-threaded:
 * one event at a time, so every request sees the effect of the previous.
 * Its cost per request does not grow with the number of sessions (epoll,
 * and only sockets whose peer hung up are checked for a close), so tests
 * with a thousand VMMs (tests/bench) measure the daemon, not the fake.
 *
 * Test fixture only: never installed.
 */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/magic.h>

#include "fake-wire.h"
#include "luo-uapi.h"
#include "macro.h"

#define KEXEC_FILE_UNLOAD 0x01
#define KEXEC_FILE_ON_CRASH 0x02
#define KEXEC_FILE_NO_INITRAMFS 0x04
#define KEXEC_FILE_FLAGS 0x3f /* UNLOAD..FORCE_DTB in 7.2 */

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020 /* Linux 6.3; glibc 2.36 lacks it */
#endif

/* include/linux/kho/abi/memfd.h: the seals memfd_luo knows. */
#define MEMFD_LUO_ALL_SEALS                                                                        \
	(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE |          \
	 F_SEAL_EXEC)

/* arch/x86 boot protocol offsets (struct setup_header inside boot_params). */
#define BZ_MIN_SIZE 1024
#define BZ_MAGIC_OFFSET 0x202
#define BZ_CMDLINE_SIZE_OFFSET 0x238
#define BZ_CMDLINE_SIZE_DEFAULT 2047 /* COMMAND_LINE_SIZE - 1 */

/* The state file is written once nothing happened for this long after a change. */
#define STATE_IDLE_MS_DEFAULT 20

struct pfile {
	uint64_t token;
	int fd; /* the kernel's reference to the file */
	dev_t dev;
	ino_t ino;
	bool retrieved;
	bool device; /* a character device (device-files), carried by reference */
};

struct session {
	char name[LUO_SESSION_NAME_SIZE];
	int fd; /* our end of the session socket; -1 while nobody holds it */
	bool incoming;
	bool retrieved;
	bool finished;
	struct pfile *files;
	size_t n_files;
};

struct kexec_image {
	bool loaded;
	uint64_t size;
	bool initrd;
	char *cmdline;
};

/*
 * What an epoll event is about: the kind in the low bits of the event's
 * data, above them the session (calloc'd, so 8-aligned) or the fd.
 */
enum watch_kind { W_SIGNAL, W_LISTEN, W_PENDING, W_DEVICE, W_SESSION };
#define WATCH_KIND_MASK 7

struct server {
	const char *state_path;
	int state_idle_ms; /* 0: the state file only at start and exit */
	int epoll_fd;
	int hup_fd; /* the device and session sockets, ready only once their peer hung up */
	int listen_fd;
	int signal_fd;
	int device_fd;
	int *pending; /* connections that have not said what they are yet */
	size_t n_pending;
	struct session **sessions;
	size_t n_sessions;
	struct kexec_image kexec;
	uint64_t boot;
	int fail_freeze; /* positive errno, 0: freezes succeed */
	int open_error;	 /* positive errno every device open fails with */
	uint64_t freeze_failures;
	bool stall_reboot; /* the next reboot(KEXEC) neither jumps nor returns */
	int stalled_fd;	   /* the connection of the reboot() kept waiting, or -1 */
	uint64_t stalled_reboots;
	bool device_files; /* PRESERVE_FD takes character devices, as the vfio-pci handler */
	int fail_finish;   /* positive errno FINISH fails with, 0: it succeeds */
	char fail_finish_session[LUO_SESSION_NAME_SIZE]; /* only this one's; "": every one */
	uint64_t finish_failures;
	bool dirty;
};

/* One ioctl being served: the kernel-side copy of the user's struct. */
struct ucmd {
	const struct fake_msg *req;
	uint8_t buf[FAKE_ARG_MAX];
	uint32_t resp_len;
	int in_fd;	   /* PRESERVE_FD's file, ours once taken */
	int out_fd;	   /* the fd to install in the caller */
	bool out_fd_owned; /* close out_fd once sent */
};

/* ---- sessions and files ---- */

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		fds[i] = safe_close(fds[i]);
}

static uint64_t watch_key(enum watch_kind kind, int fd, struct session *se)
{
	return kind == W_SESSION ? (uint64_t)(uintptr_t)se | kind : (uint64_t)fd << 3 | kind;
}

/* Watch fd for requests; a device or session socket also for its last close. */
static int server_watch(struct server *s, enum watch_kind kind, int fd, struct session *se)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = watch_key(kind, fd, se)};

	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return negative_errno();
	if (kind != W_DEVICE && kind != W_SESSION)
		return 0;
	ev.events = EPOLLRDHUP;
	if (epoll_ctl(s->hup_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = negative_errno();

		(void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		return r;
	}
	return 0;
}

static void pfile_release(struct pfile *f)
{
	f->fd = safe_close(f->fd);
}

/* Drop our reference to every file: unpreserve (outgoing) or finish (incoming). */
static void session_drop_files(struct session *se)
{
	for (size_t i = 0; i < se->n_files; i++)
		pfile_release(&se->files[i]);
	free(se->files);
	se->files = NULL;
	se->n_files = 0;
}

static void session_free(struct session *se)
{
	if (!se)
		return;
	session_drop_files(se);
	safe_close(se->fd);
	free(se);
}

static void server_remove_session(struct server *s, size_t i)
{
	session_free(s->sessions[i]);
	memmove(s->sessions + i, s->sessions + i + 1, (s->n_sessions - i - 1) * sizeof(void *));
	s->n_sessions--;
	s->dirty = true;
}

static size_t session_index(struct server *s, const struct session *se)
{
	size_t i = 0;

	while (i < s->n_sessions && s->sessions[i] != se)
		i++;
	return i;
}

static struct session *session_find(struct server *s, const char *name, bool incoming)
{
	for (size_t i = 0; i < s->n_sessions; i++)
		if (s->sessions[i]->incoming == incoming &&
		    strncmp(s->sessions[i]->name, name, LUO_SESSION_NAME_SIZE) == 0)
			return s->sessions[i];
	return NULL;
}

static int server_add_session(struct server *s, struct session *se)
{
	struct session **n = reallocarray(s->sessions, s->n_sessions + 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	s->sessions = n;
	s->sessions[s->n_sessions++] = se;
	s->dirty = true;
	return 0;
}

/* fail-finish: a handler's .can_finish() refuses, as vfio-pci's does without a new domain. */
static bool finish_refused(struct server *s, const struct session *se)
{
	return s->fail_finish && (!s->fail_finish_session[0] ||
				  strncmp(s->fail_finish_session, se->name, LUO_SESSION_NAME_SIZE) == 0);
}

/* The kernel's luo_session_release(): the last session fd was closed. */
static void session_release(struct server *s, size_t i)
{
	struct session *se = s->sessions[i];

	/*
	 * Retrieved: finish (files never retrieved are freed). The kernel
	 * returns early when that finish is refused: the session stays,
	 * stranded (nobody can retrieve it again) until the next kexec.
	 */
	if (se->incoming && se->retrieved && !se->finished && finish_refused(s, se)) {
		se->fd = safe_close(se->fd);
		s->finish_failures++;
		s->dirty = true;
		return;
	}
	/* Outgoing: cancel. */
	server_remove_session(s, i);
}

static bool fd_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* One socket the hangup set reported: 1 if it was at EOF and is released now. */
static int reap_one(struct server *s, uint64_t key, const struct session *keep)
{
	struct session *se = (struct session *)(uintptr_t)(key & ~(uint64_t)WATCH_KIND_MASK);

	if ((key & WATCH_KIND_MASK) == W_DEVICE) {
		if (s->device_fd < 0 || !fd_closed(s->device_fd))
			return 0;
		s->device_fd = safe_close(s->device_fd);
		s->dirty = true;
		return 1;
	}
	if (se == keep || se->fd < 0 || !fd_closed(se->fd))
		return 0;
	session_release(s, session_index(s, se));
	return 1;
}

/*
 * A close(2) in a client returns only after the kernel's release() ran;
 * here the EOF waits in our queue. Take every pending EOF before serving a
 * request, so a request never sees a device or session its sender closed.
 * Only a socket whose peer hung up can be at EOF: the hangup set names
 * them (one still holding requests stays until they are served).
 */
static void server_reap(struct server *s, const struct session *keep)
{
	struct epoll_event ev[64];
	int n, released;

	do {
		n = epoll_wait(s->hup_fd, ev, ARRAY_SIZE(ev), 0);
		released = 0;
		for (int i = 0; i < n; i++)
			released += reap_one(s, ev[i].data.u64, keep);
		/* a full batch may hide more: look again while this one freed some */
	} while (n == (int)ARRAY_SIZE(ev) && released > 0);
}

/* ---- state file ---- */

static struct json_object *json_file(const struct pfile *f)
{
	struct json_object *o = json_object_new_object();
	struct stat st = {};

	(void)fstat(f->fd, &st);
	json_object_object_add(o, "token", json_object_new_uint64(f->token));
	json_object_object_add(o, "size", json_object_new_int64(st.st_size));
	json_object_object_add(o, "retrieved", json_object_new_boolean(f->retrieved));
	json_object_object_add(o, "device", json_object_new_boolean(f->device));
	return o;
}

static struct json_object *json_session(const struct session *se)
{
	struct json_object *o = json_object_new_object();
	struct json_object *files = json_object_new_array();

	for (size_t i = 0; i < se->n_files; i++)
		json_object_array_add(files, json_file(&se->files[i]));
	json_object_object_add(o, "name", json_object_new_string(se->name));
	json_object_object_add(o, "incoming", json_object_new_boolean(se->incoming));
	json_object_object_add(o, "retrieved", json_object_new_boolean(se->retrieved));
	json_object_object_add(o, "finished", json_object_new_boolean(se->finished));
	json_object_object_add(o, "files", files);
	return o;
}

static struct json_object *json_kexec(const struct kexec_image *k)
{
	struct json_object *o;

	if (!k->loaded)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "image_size", json_object_new_uint64(k->size));
	json_object_object_add(o, "initrd", json_object_new_boolean(k->initrd));
	json_object_object_add(o, "cmdline", json_object_new_string(k->cmdline ?: ""));
	return o;
}

static char *server_state_json(struct server *s)
{
	struct json_object *o = json_object_new_object();
	struct json_object *sessions = json_object_new_array();
	char *text;

	for (size_t i = 0; i < s->n_sessions; i++)
		json_object_array_add(sessions, json_session(s->sessions[i]));
	json_object_object_add(o, "boot", json_object_new_uint64(s->boot));
	json_object_object_add(o, "device_open", json_object_new_boolean(s->device_fd >= 0));
	json_object_object_add(o, "kexec", json_kexec(&s->kexec));
	json_object_object_add(o, "sessions", sessions);
	json_object_object_add(o, "freeze_failures", json_object_new_uint64(s->freeze_failures));
	json_object_object_add(o, "fail_freeze", json_object_new_int(s->fail_freeze));
	json_object_object_add(o, "open_error", json_object_new_int(s->open_error));
	json_object_object_add(o, "stall_reboot", json_object_new_boolean(s->stall_reboot));
	json_object_object_add(o, "stalled_reboots", json_object_new_uint64(s->stalled_reboots));
	json_object_object_add(o, "device_files", json_object_new_boolean(s->device_files));
	json_object_object_add(o, "fail_finish", json_object_new_int(s->fail_finish));
	json_object_object_add(o, "finish_failures", json_object_new_uint64(s->finish_failures));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		p += n;
		len -= n;
	}
	return 0;
}

/* Readers never see half a file: write a temporary one and rename it. */
static int server_save_state(struct server *s)
{
	_cleanup_free_ char *text = server_state_json(s), *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (!text || asprintf(&tmp, "%s.tmp", s->state_path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return negative_errno();
	r = write_all(fd, text, strlen(text));
	if (r >= 0)
		r = write_all(fd, "\n", 1);
	if (r >= 0 && rename(tmp, s->state_path) < 0)
		r = negative_errno();
	if (r < 0)
		(void)unlink(tmp);
	s->dirty = false;
	return r;
}

/* ---- ioctl plumbing, as luo_ucmd and copy_struct_from_user() ---- */

static int ucmd_copy_in(struct ucmd *u, uint32_t ksize)
{
	const struct fake_msg *req = u->req;

	if (req->fault)
		return req->fault;
	for (uint32_t i = ksize; i < req->data_len; i++)
		if (req->data[i])
			return -E2BIG;
	if (req->tail)
		return req->tail;
	memcpy(u->buf, req->data, MIN(req->data_len, ksize));
	return 0;
}

static int ucmd_respond(struct ucmd *u, uint32_t ksize)
{
	u->resp_len = MIN(u->req->len, ksize);
	return 0;
}

/* A new session socket: our end stays, the caller's end goes back as arg.fd. */
static int session_socket(struct server *s, struct session *se, struct ucmd *u)
{
	int pair[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return negative_errno();
	if (fcntl(pair[0], F_SETFL, O_NONBLOCK) < 0 || server_watch(s, W_SESSION, pair[0], se) < 0) {
		int r = negative_errno();

		close(pair[0]);
		close(pair[1]);
		return r;
	}
	se->fd = pair[0];
	u->out_fd = pair[1];
	u->out_fd_owned = true;
	return 0;
}

static int luo_create_session(struct server *s, struct ucmd *u)
{
	struct luo_create_session_arg *arg = (void *)u->buf;
	const char *name = (const char *)arg->name;
	size_t len = strnlen(name, LUO_SESSION_NAME_SIZE);
	struct session *se;
	int r;

	if (len == 0 || len > LUO_SESSION_NAME_SIZE - 1)
		return -EINVAL;
	/* Only outgoing names must be unique: incoming ones live in another list. */
	if (session_find(s, name, false))
		return -EEXIST;
	se = calloc(1, sizeof(*se));
	if (!se)
		return -ENOMEM;
	memcpy(se->name, name, len);
	r = session_socket(s, se, u);
	if (r >= 0)
		r = server_add_session(s, se);
	if (r < 0) {
		u->out_fd = safe_close(u->out_fd);
		session_free(se);
		return r;
	}
	return ucmd_respond(u, sizeof(*arg));
}

static int luo_retrieve_session(struct server *s, struct ucmd *u)
{
	struct luo_retrieve_session_arg *arg = (void *)u->buf;
	struct session *se = session_find(s, (const char *)arg->name, true);
	int r;

	if (!se)
		return -ENOENT;
	if (se->retrieved)
		return -EINVAL;
	r = session_socket(s, se, u);
	if (r < 0)
		return r;
	se->retrieved = true;
	s->dirty = true;
	return ucmd_respond(u, sizeof(*arg));
}

/* luo_ioctl(): the /dev/liveupdate fd. */
static int device_ioctl(struct server *s, struct ucmd *u)
{
	static const uint32_t cmds[] = {LUO_IOCTL_CREATE_SESSION, LUO_IOCTL_RETRIEVE_SESSION};
	uint32_t cmd = (uint32_t)u->req->cmd, nr = _IOC_NR(cmd);
	const uint32_t ksize = sizeof(struct luo_create_session_arg);
	int r;

	if (nr >= ARRAY_SIZE(cmds))
		return -EINVAL;
	if (cmd != cmds[nr])
		return -ENOTTY; /* -ENOIOCTLCMD, as vfs_ioctl() reports it */
	if (u->req->len < offsetof(struct luo_create_session_arg, name) + LUO_SESSION_NAME_SIZE)
		return -EINVAL;
	r = ucmd_copy_in(u, ksize);
	if (r < 0)
		return r;
	return nr == 0 ? luo_create_session(s, u) : luo_retrieve_session(s, u);
}

/* memfd_luo_can_preserve(): shmem_file(file) && !inode->i_nlink. */
static bool memfd_can_preserve(int fd, const struct stat *st)
{
	struct statfs sfs;

	return S_ISREG(st->st_mode) && st->st_nlink == 0 && fstatfs(fd, &sfs) == 0 &&
	       sfs.f_type == TMPFS_MAGIC;
}

/* The luo_preserved_files xarray: preserved anywhere, or retrieved and not finished. */
static bool file_is_preserved(struct server *s, const struct stat *st)
{
	for (size_t i = 0; i < s->n_sessions; i++) {
		struct session *se = s->sessions[i];

		for (size_t j = 0; j < se->n_files; j++) {
			struct pfile *f = &se->files[j];

			if ((!se->incoming || f->retrieved) && f->dev == st->st_dev &&
			    f->ino == st->st_ino)
				return true;
		}
	}
	return false;
}

static bool token_is_used(const struct session *se, uint64_t token)
{
	for (size_t i = 0; i < se->n_files; i++)
		if (se->files[i].token == token)
			return true;
	return false;
}

/* memfd_luo_preserve(): only seals this version knows, and no overflow. */
static int memfd_preserve_check(int fd, const struct stat *st)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return negative_errno();
	if (seals & ~MEMFD_LUO_ALL_SEALS)
		return -EOPNOTSUPP;
	if (((uint64_t)st->st_size + 4095) / 4096 > UINT32_MAX)
		return -EFBIG;
	return 0;
}

static int session_add_file(struct session *se, int fd, uint64_t token, const struct stat *st)
{
	struct pfile *n = reallocarray(se->files, se->n_files + 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	se->files = n;
	se->files[se->n_files++] = (struct pfile){.token = token, .fd = fd, .dev = st->st_dev,
						  .ino = st->st_ino, .device = S_ISCHR(st->st_mode)};
	return 0;
}

/* device-files: a character device stands in for a VFIO device file (vfio_pci_liveupdate.c). */
static bool device_can_preserve(struct server *s, const struct stat *st)
{
	return s->device_files && S_ISCHR(st->st_mode);
}

/* luo_preserve_file(), in the kernel's order of checks. */
static int luo_preserve_fd(struct server *s, struct session *se, struct ucmd *u)
{
	struct luo_preserve_fd_arg *arg = (void *)u->buf;
	struct stat st;
	int r;

	if (token_is_used(se, arg->token))
		return -EEXIST;
	/* fget() refuses O_PATH fds. */
	if (u->in_fd < 0 || (fcntl(u->in_fd, F_GETFL) & O_PATH))
		return -EBADF;
	if (fstat(u->in_fd, &st) < 0)
		return negative_errno();
	if (!memfd_can_preserve(u->in_fd, &st) && !device_can_preserve(s, &st))
		return -ENOENT;
	if (file_is_preserved(s, &st))
		return -EBUSY;
	r = S_ISCHR(st.st_mode) ? 0 : memfd_preserve_check(u->in_fd, &st);
	if (r < 0)
		return r;
	r = session_add_file(se, u->in_fd, arg->token, &st);
	if (r < 0)
		return r;
	u->in_fd = -1;
	s->dirty = true;
	return ucmd_respond(u, sizeof(*arg));
}

/* luo_retrieve_file(): once retrieved, the same file again. */
static int luo_retrieve_fd(struct server *s, struct session *se, struct ucmd *u)
{
	struct luo_retrieve_fd_arg *arg = (void *)u->buf;

	for (size_t i = 0; i < se->n_files; i++) {
		struct pfile *f = &se->files[i];

		if (f->token != arg->token)
			continue;
		f->retrieved = true;
		u->out_fd = f->fd;
		s->dirty = true;
		return ucmd_respond(u, sizeof(*arg));
	}
	return -ENOENT;
}

static int luo_finish(struct server *s, struct session *se, struct ucmd *u)
{
	struct luo_finish_arg *arg = (void *)u->buf;

	if (arg->reserved)
		return -EINVAL;
	if (finish_refused(s, se)) {
		/* nothing changes: the session and its files stay for another FINISH */
		s->finish_failures++;
		s->dirty = true;
		return -s->fail_finish;
	}
	session_drop_files(se);
	se->finished = true;
	s->dirty = true;
	return ucmd_respond(u, sizeof(*arg));
}

static int luo_get_name(struct server *s, struct session *se, struct ucmd *u)
{
	struct luo_get_name_arg *arg = (void *)u->buf;

	if (arg->reserved)
		return -EINVAL;
	memcpy(arg->name, se->name, LUO_SESSION_NAME_SIZE);
	return ucmd_respond(u, sizeof(*arg));
}

enum op_type { OP_INCOMING, OP_OUTGOING, OP_ALL };

struct session_op {
	uint32_t cmd;
	uint32_t size;
	uint32_t min_size;
	enum op_type type;
	int (*execute)(struct server *s, struct session *se, struct ucmd *u);
};

#define offsetofend(t, m) (offsetof(t, m) + sizeof(((t *)0)->m))

/* luo_session_ioctl_ops[], indexed by nr - 0x40. */
static const struct session_op session_ops[] = {
    {LUO_IOCTL_PRESERVE_FD, sizeof(struct luo_preserve_fd_arg),
     offsetofend(struct luo_preserve_fd_arg, token), OP_OUTGOING, luo_preserve_fd},
    {LUO_IOCTL_RETRIEVE_FD, sizeof(struct luo_retrieve_fd_arg),
     offsetofend(struct luo_retrieve_fd_arg, token), OP_INCOMING, luo_retrieve_fd},
    {LUO_IOCTL_FINISH, sizeof(struct luo_finish_arg), offsetofend(struct luo_finish_arg, reserved),
     OP_INCOMING, luo_finish},
    {LUO_IOCTL_GET_NAME, sizeof(struct luo_get_name_arg),
     offsetofend(struct luo_get_name_arg, name), OP_ALL, luo_get_name},
};

static bool op_type_valid(const struct session *se, enum op_type type)
{
	/* Only a retrieved session is incoming from the fd's point of view. */
	return type == OP_ALL || (type == OP_INCOMING) == se->retrieved;
}

/* luo_session_ioctl(). */
static int session_ioctl(struct server *s, struct session *se, struct ucmd *u)
{
	uint32_t cmd = (uint32_t)u->req->cmd, nr = _IOC_NR(cmd);
	const struct session_op *op;
	int r;

	if (nr < 0x40 || nr - 0x40 >= ARRAY_SIZE(session_ops))
		return -EINVAL;
	op = &session_ops[nr - 0x40];
	if (op->cmd != cmd)
		return -ENOTTY;
	if (!op_type_valid(se, op->type))
		return -EINVAL;
	if (u->req->len < op->min_size)
		return -EINVAL;
	r = ucmd_copy_in(u, op->size);
	if (r < 0)
		return r;
	return op->execute(s, se, u);
}

/* Reply on the request's private reply socket; a failed send is the caller gone. */
static void ioctl_reply(struct ucmd *u, int reply_fd, int r)
{
	struct {
		struct fake_msg m;
		uint8_t data[FAKE_ARG_MAX];
	} reply = {.m = {.op = FAKE_OP_IOCTL, .error = r}};

	if (r >= 0) {
		reply.m.data_len = u->resp_len;
		reply.m.has_fd = u->out_fd >= 0;
		memcpy(reply.data, u->buf, u->resp_len);
	}
	(void)fake_send(reply_fd, &reply.m, r >= 0 ? &u->out_fd : NULL, r >= 0 ? 1 : 0);
	if (u->out_fd_owned)
		u->out_fd = safe_close(u->out_fd);
}

/* A request on the device (se == NULL) or on a session socket. */
static void serve_ioctl(struct server *s, struct session *se, const struct fake_msg *req, int *fds,
			int n_fds)
{
	struct ucmd u = {.req = req, .in_fd = -1, .out_fd = -1};
	int r;

	if (n_fds < 1 || req->op != FAKE_OP_IOCTL) {
		close_fds(fds, n_fds);
		return;
	}
	if (n_fds > 1 && req->fd_status[1] == 0)
		u.in_fd = fds[1];
	/* The requester's own session stays: it is waiting for this reply. */
	server_reap(s, se);
	r = se ? session_ioctl(s, se, &u) : device_ioctl(s, &u);
	ioctl_reply(&u, fds[0], r);
	safe_close(u.in_fd);
	safe_close(fds[0]);
}

/* ---- kexec_file_load(2) ---- */

static void kexec_forget(struct kexec_image *k)
{
	free(k->cmdline);
	*k = (struct kexec_image){};
}

/* kernel_read_file_from_fd(): a readable regular file that is not empty. */
static int kexec_file_check(int fd, int status, off_t *ret_size)
{
	struct stat st;
	int fl;

	if (status < 0 || fd < 0)
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode) || st.st_size <= 0)
		return -EINVAL;
	*ret_size = st.st_size;
	return 0;
}

/* bzImage64_probe(), reduced to what a test image can carry: size and "HdrS". */
static int kexec_probe(int fd, off_t size, uint32_t *ret_cmdline_size)
{
	uint32_t cmdline_size = 0;
	char magic[4];

	if (size < BZ_MIN_SIZE)
		return -ENOEXEC;
	if (pread(fd, magic, sizeof(magic), BZ_MAGIC_OFFSET) != sizeof(magic) ||
	    memcmp(magic, "HdrS", 4) != 0)
		return -ENOEXEC;
	if (pread(fd, &cmdline_size, sizeof(cmdline_size), BZ_CMDLINE_SIZE_OFFSET) !=
		sizeof(cmdline_size) ||
	    cmdline_size == 0)
		cmdline_size = BZ_CMDLINE_SIZE_DEFAULT;
	*ret_cmdline_size = cmdline_size;
	return 0;
}

/* kimage_file_prepare_segments() and bzImage64_load() on the command line. */
static int kexec_cmdline_check(const struct fake_msg *req, uint32_t cmdline_size)
{
	if (req->len == 0)
		return 0;
	if (req->fault)
		return req->fault;
	if (req->tail)
		return req->tail;
	if (req->data[req->len - 1] != '\0')
		return -EINVAL;
	if (req->len > cmdline_size)
		return -EINVAL;
	return 0;
}

static int kexec_file_load(struct server *s, const struct fake_msg *req, int *fds, int n_fds)
{
	uint64_t flags = req->cmd;
	int i = 0, kfd, ifd, r;
	uint32_t cmdline_size = 0;
	off_t ksize = 0, isize = 0;
	char *cmdline;

	if (flags != (flags & KEXEC_FILE_FLAGS))
		return -EINVAL;
	if (flags & KEXEC_FILE_ON_CRASH)
		return -EINVAL; /* no crash kernel in the fake */
	if (flags & KEXEC_FILE_UNLOAD) {
		kexec_forget(&s->kexec);
		s->dirty = true;
		return 0;
	}
	kfd = (req->has_fd & 1) && i < n_fds ? fds[i++] : -1;
	ifd = (req->has_fd & 2) && i < n_fds ? fds[i++] : -1;

	r = kexec_file_check(kfd, req->fd_status[0], &ksize);
	if (r >= 0)
		r = kexec_probe(kfd, ksize, &cmdline_size);
	if (r >= 0 && !(flags & KEXEC_FILE_NO_INITRAMFS))
		r = kexec_file_check(ifd, req->fd_status[1], &isize);
	if (r >= 0)
		r = kexec_cmdline_check(req, cmdline_size);
	if (r < 0)
		return r; /* a failed load keeps the image loaded before */

	cmdline = strndup(req->len ? (const char *)req->data : "", req->len);
	if (!cmdline)
		return -ENOMEM;
	kexec_forget(&s->kexec);
	s->kexec = (struct kexec_image){
	    .loaded = true,
	    .size = ksize,
	    .initrd = !(flags & KEXEC_FILE_NO_INITRAMFS),
	    .cmdline = cmdline,
	};
	s->dirty = true;
	return 0;
}

/* ---- reboot(LINUX_REBOOT_CMD_KEXEC) ---- */

static bool buf_is_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copy contents without touching src's offset, which its owners share. */
static int memfd_copy_data(int src, int dst, off_t size)
{
	_cleanup_free_ char *buf = malloc(1 << 16);

	if (!buf)
		return -ENOMEM;
	for (off_t off = 0; off < size;) {
		ssize_t n = pread(src, buf, 1 << 16, off);

		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		/* Holes read as zeros: leave them holes. */
		if (!buf_is_zero(buf, n) && pwrite(dst, buf, n, off) != n)
			return n < 0 ? negative_errno() : -EIO;
		off += n;
	}
	return 0;
}

/*
 * What memfd_luo freeze + retrieve make of a memfd: a new memfd with the
 * same contents, size, offset and seals; FD_CLOEXEC and the name are lost.
 */
static int memfd_clone(int src, int *ret)
{
	_cleanup_close_ int fd = -1;
	int seals, r;
	struct stat st;
	off_t pos;

	if (fstat(src, &st) < 0)
		return negative_errno();
	seals = fcntl(src, F_GET_SEALS);
	pos = lseek(src, 0, SEEK_CUR);
	if (seals < 0 || pos < 0)
		return negative_errno();
	fd = memfd_create("", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, st.st_size) < 0)
		return negative_errno();
	r = memfd_copy_data(src, fd, st.st_size);
	if (r < 0)
		return r;
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
		return negative_errno();
	if (lseek(fd, pos, SEEK_SET) < 0)
		return negative_errno();
	*ret = TAKE_FD(fd);
	return 0;
}

static size_t outgoing_files(struct server *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_sessions; i++)
		if (!s->sessions[i]->incoming)
			n += s->sessions[i]->n_files;
	return n;
}

/* Freeze: clone every outgoing file; on failure nothing changed. */
static int kexec_freeze(struct server *s, int *clones, size_t n)
{
	size_t k = 0;
	int r = 0;

	for (size_t i = 0; i < s->n_sessions && r >= 0; i++) {
		struct session *se = s->sessions[i];

		for (size_t j = 0; !se->incoming && j < se->n_files && r >= 0; j++) {
			/* a device stays where it is: the next boot gets the same file */
			if (se->files[j].device) {
				clones[k] = fcntl(se->files[j].fd, F_DUPFD_CLOEXEC, 3);
				r = clones[k++] < 0 ? negative_errno() : 0;
			} else {
				r = memfd_clone(se->files[j].fd, &clones[k++]);
			}
		}
	}
	if (r < 0)
		close_fds(clones, n);
	return r;
}

/* The new kernel: outgoing sessions come in, everything else is gone. */
static void kexec_jump(struct server *s, int *clones)
{
	size_t k = 0;

	for (size_t i = s->n_sessions; i > 0; i--)
		if (s->sessions[i - 1]->incoming)
			server_remove_session(s, i - 1);
	for (size_t i = 0; i < s->n_sessions; i++) {
		struct session *se = s->sessions[i];

		se->fd = safe_close(se->fd);
		se->incoming = true;
		se->retrieved = se->finished = false;
		for (size_t j = 0; j < se->n_files; j++) {
			struct pfile *f = &se->files[j];
			struct stat st = {};

			safe_close(f->fd);
			f->fd = clones[k++];
			(void)fstat(f->fd, &st);
			f->dev = st.st_dev;
			f->ino = st.st_ino;
			f->retrieved = false;
		}
	}
	s->device_fd = safe_close(s->device_fd);
	kexec_forget(&s->kexec);
	s->boot++;
	s->dirty = true;
}

/* kernel_kexec(): no image -> EINVAL; liveupdate_reboot() may fail and roll back. */
static int kexec_reboot(struct server *s)
{
	_cleanup_free_ int *clones = NULL;
	size_t n;
	int r;

	server_reap(s, NULL);
	if (!s->kexec.loaded)
		return -EINVAL;
	n = outgoing_files(s);
	/* Only a file's freeze can fail: with nothing preserved nothing fails. */
	if (s->fail_freeze && n > 0) {
		s->freeze_failures++;
		s->dirty = true;
		return -s->fail_freeze;
	}
	clones = calloc(n ?: 1, sizeof(int));
	if (!clones)
		return -ENOMEM;
	/* a failed freeze closes them all: none may be 0 (stdin) */
	for (size_t i = 0; i < n; i++)
		clones[i] = -1;
	r = kexec_freeze(s, clones, n);
	if (r < 0)
		return r;
	kexec_jump(s, clones);
	return 0;
}

/* ---- control connections ---- */

static int errno_arg(const char *arg, int *ret)
{
	char *end;
	long v;

	if (!arg)
		return -EINVAL;
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || v < 0 || v > 4095)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

/* Text as a memfd, read from its start: no size limit on a message. */
static int text_memfd(const char *name, const char *text, int *ret)
{
	_cleanup_close_ int fd = -1;
	int r;

	if (!text)
		return -ENOMEM;
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	r = write_all(fd, text, strlen(text));
	if (r < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return negative_errno();
	*ret = TAKE_FD(fd);
	return 0;
}

static int state_memfd(struct server *s, int *ret)
{
	_cleanup_free_ char *text = server_state_json(s);

	return text_memfd("fake-kernel-state", text, ret);
}

/* A stalled reboot() gets EOF: the caller's reboot() fails with EIO. */
static void reboot_unstall(struct server *s)
{
	s->stalled_fd = safe_close(s->stalled_fd);
}

/* "fail-finish ERRNO [SESSION]" */
static int control_fail_finish(struct server *s, char *arg)
{
	char *name = arg ? strchr(arg, ' ') : NULL;
	int r, v;

	if (name)
		*name++ = '\0';
	r = errno_arg(arg, &v);
	if (r < 0)
		return r;
	if (name && (!*name || strlen(name) >= LUO_SESSION_NAME_SIZE))
		return -EINVAL;
	s->fail_finish = v;
	snprintf(s->fail_finish_session, sizeof(s->fail_finish_session), "%s", v && name ? name : "");
	s->dirty = true;
	return 0;
}

static int control(struct server *s, const struct fake_msg *req, int *ret_fd)
{
	char cmd[256] = "", *arg;
	int r, v;

	memcpy(cmd, req->data, MIN(req->data_len, sizeof(cmd) - 1));
	arg = strchr(cmd, ' ');
	if (arg)
		*arg++ = '\0';
	server_reap(s, NULL);
	if (strcmp(cmd, "state") == 0)
		return state_memfd(s, ret_fd);
	/* what the shim opens as /sys/kernel/kexec_loaded */
	if (strcmp(cmd, "kexec-loaded") == 0)
		return text_memfd("kexec_loaded", s->kexec.loaded ? "1\n" : "0\n", ret_fd);
	if (strcmp(cmd, "stall-reboot") == 0) {
		r = errno_arg(arg, &v);
		if (r < 0 || v > 1)
			return -EINVAL;
		s->stall_reboot = v;
		if (!v)
			reboot_unstall(s);
		s->dirty = true;
		return 0;
	}
	if (strcmp(cmd, "device-files") == 0) {
		r = errno_arg(arg, &v);
		if (r < 0 || v > 1)
			return -EINVAL;
		s->device_files = v;
		s->dirty = true;
		return 0;
	}
	if (strcmp(cmd, "fail-finish") == 0)
		return control_fail_finish(s, arg);
	if (strcmp(cmd, "clear-fail-freeze") == 0)
		arg = "0";
	if (strcmp(cmd, "fail-freeze") != 0 && strcmp(cmd, "clear-fail-freeze") != 0 &&
	    strcmp(cmd, "fail-open") != 0)
		return -EOPNOTSUPP;
	r = errno_arg(arg, &v);
	if (r < 0)
		return r;
	if (strcmp(cmd, "fail-open") == 0)
		s->open_error = v;
	else
		s->fail_freeze = v;
	s->dirty = true;
	return 0;
}

/* luo_open(): exclusive, and a failed deserialization fails every open. */
static int device_open(struct server *s)
{
	server_reap(s, NULL);
	if (s->device_fd >= 0)
		return -EBUSY;
	if (s->open_error)
		return -s->open_error;
	return 0;
}

static void pending_remove(struct server *s, size_t i)
{
	memmove(s->pending + i, s->pending + i + 1, (s->n_pending - i - 1) * sizeof(int));
	s->n_pending--;
}

/* The first message says what a connection is. */
static void serve_hello(struct server *s, size_t i, const struct fake_msg *req, int *fds, int n_fds)
{
	struct fake_msg reply = {.op = req->op};
	int conn = s->pending[i], out = -1, r;

	pending_remove(s, i);
	switch (req->op) {
	case FAKE_OP_DEVICE_OPEN:
		r = device_open(s);
		break;
	case FAKE_OP_KEXEC_LOAD:
		r = kexec_file_load(s, req, fds, n_fds);
		break;
	case FAKE_OP_REBOOT:
		if (s->stall_reboot) {
			/* no reply: the caller stays inside reboot() until killed */
			reboot_unstall(s);
			(void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, conn, NULL);
			s->stalled_fd = conn;
			s->stalled_reboots++;
			s->stall_reboot = false;
			s->dirty = true;
			close_fds(fds, n_fds);
			return;
		}
		r = kexec_reboot(s);
		break;
	case FAKE_OP_CONTROL:
		r = control(s, req, &out);
		break;
	default:
		r = -EOPNOTSUPP;
	}
	close_fds(fds, n_fds);
	reply.error = r;
	reply.has_fd = out >= 0;
	if (fake_send(conn, &reply, &out, out >= 0) >= 0 && req->op == FAKE_OP_DEVICE_OPEN &&
	    r >= 0) {
		/* from now on a device: watched as one, and for its last close */
		(void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, conn, NULL);
		if (server_watch(s, W_DEVICE, conn, NULL) >= 0) {
			s->device_fd = conn;
			s->dirty = true;
			conn = -1;
		}
	}
	safe_close(out);
	safe_close(conn);
}

/* ---- the event loop ---- */

static size_t pending_find(struct server *s, int fd)
{
	size_t i = 0;

	while (i < s->n_pending && s->pending[i] != fd)
		i++;
	return i;
}

static void on_listen(struct server *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int *n;

	if (fd < 0)
		return;
	n = reallocarray(s->pending, s->n_pending + 1, sizeof(int));
	if (!n || server_watch(s, W_PENDING, fd, NULL) < 0) {
		if (n)
			s->pending = n;
		close(fd);
		return;
	}
	s->pending = n;
	s->pending[s->n_pending++] = fd;
}

/* Receive into a heap buffer: a kexec command line can be 64 KiB. */
static void on_message(struct server *s, enum watch_kind kind, int fd, struct session *se)
{
	_cleanup_free_ struct fake_msg *msg = calloc(1, FAKE_MSG_MAX);
	int fds[FAKE_FDS_MAX], n;

	if (!msg)
		return;
	n = fake_recv(fd, msg, FAKE_MSG_MAX, fds, FAKE_FDS_MAX, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return;
	if (n < 0 || msg->op == 0) {
		/* EOF: the last copy of the fd was closed. */
		if (kind == W_PENDING) {
			pending_remove(s, pending_find(s, fd));
			safe_close(fd);
		} else if (kind == W_DEVICE) {
			s->device_fd = safe_close(s->device_fd);
			s->dirty = true;
		} else {
			session_release(s, session_index(s, se));
		}
		return;
	}
	if (kind == W_PENDING)
		serve_hello(s, pending_find(s, fd), msg, fds, n);
	else
		serve_ioctl(s, kind == W_DEVICE ? NULL : se, msg, fds, n);
}

/*
 * One event per turn: serving it may free what other events point at.
 * The state file is written once the server has been idle for
 * state_idle_ms: rewriting every session and file after every change
 * would make each request cost as much as the whole state. A benchmark
 * turns that off, lest the write land in the time it measures.
 */
static int server_turn(struct server *s, bool *quit)
{
	struct epoll_event ev;
	enum watch_kind kind;
	struct session *se;
	int n;

	n = epoll_wait(s->epoll_fd, &ev, 1,
		       s->dirty && s->state_idle_ms > 0 ? s->state_idle_ms : -1);
	if (n < 0)
		return errno == EINTR ? 0 : negative_errno();
	if (n == 0)
		return server_save_state(s);
	kind = (enum watch_kind)(ev.data.u64 & WATCH_KIND_MASK);
	se = (struct session *)(uintptr_t)(ev.data.u64 & ~(uint64_t)WATCH_KIND_MASK);
	if (kind == W_SIGNAL)
		*quit = true;
	else if (kind == W_LISTEN)
		on_listen(s);
	else if (kind == W_SESSION)
		on_message(s, kind, se->fd, se);
	else
		on_message(s, kind, (int)(ev.data.u64 >> 3), NULL);
	return 0;
}

static void server_done(struct server *s, const char *socket_path)
{
	for (size_t i = 0; i < s->n_sessions; i++)
		session_free(s->sessions[i]);
	free(s->sessions);
	close_fds(s->pending, s->n_pending);
	free(s->pending);
	kexec_forget(&s->kexec);
	reboot_unstall(s);
	safe_close(s->device_fd);
	safe_close(s->listen_fd);
	safe_close(s->signal_fd);
	safe_close(s->hup_fd);
	safe_close(s->epoll_fd);
	if (socket_path)
		(void)unlink(socket_path);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negative_errno();
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		return negative_errno();
	return TAKE_FD(fd);
}

static int signals_block(void)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return negative_errno();
	(void)signal(SIGPIPE, SIG_IGN);
	r = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	return r < 0 ? negative_errno() : r;
}

static int server_main(const char *socket_path, const char *state_path, int fail_freeze,
		       int state_idle_ms)
{
	struct server s = {
	    .state_path = state_path,
	    .state_idle_ms = state_idle_ms,
	    .epoll_fd = epoll_create1(EPOLL_CLOEXEC),
	    .hup_fd = epoll_create1(EPOLL_CLOEXEC),
	    .listen_fd = -1,
	    .device_fd = -1,
	    .stalled_fd = -1,
	    .fail_freeze = fail_freeze,
	    .boot = 1,
	};
	bool quit = false;
	int r;

	s.signal_fd = signals_block();
	if (s.signal_fd < 0) {
		fprintf(stderr, "fake-kernel: signalfd: %s\n", strerror(-s.signal_fd));
		return 1;
	}
	s.listen_fd = listen_unix(socket_path);
	r = s.epoll_fd < 0 || s.hup_fd < 0 ? -EMFILE : s.listen_fd;
	if (r >= 0)
		r = server_watch(&s, W_SIGNAL, s.signal_fd, NULL);
	if (r >= 0)
		r = server_watch(&s, W_LISTEN, s.listen_fd, NULL);
	/* The state file appears once we listen: that is "ready". */
	if (r >= 0)
		r = server_save_state(&s);
	while (r >= 0 && !quit)
		r = server_turn(&s, &quit);
	if (r >= 0 && s.dirty)
		r = server_save_state(&s);
	if (r < 0)
		fprintf(stderr, "fake-kernel: %s\n", strerror(-r));
	server_done(&s, s.listen_fd >= 0 ? socket_path : NULL);
	return r < 0 ? 1 : 0;
}

/* ---- the harness's side: fake-kernel --control PATH COMMAND [ARG] ---- */

static int print_fd(int fd)
{
	char buf[4096];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return negative_errno();
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, stdout);
	return n < 0 ? negative_errno() : 0;
}

static int control_main(const char *path, int argc, char **argv)
{
	struct {
		struct fake_msg m;
		char data[256];
	} req = {.m = {.op = FAKE_OP_CONTROL}}, reply = {};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	int out = -1, r;

	for (int i = 0; i < argc; i++)
		req.m.data_len +=
		    snprintf(req.data + req.m.data_len, sizeof(req.data) - req.m.data_len, "%s%s",
			     i ? " " : "", argv[i]);
	if (req.m.data_len >= sizeof(req.data) || strlen(path) >= sizeof(sa.sun_path))
		return -E2BIG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();
	r = fake_send(fd, &req.m, NULL, 0);
	if (r >= 0)
		r = fake_recv(fd, &reply.m, sizeof(reply), &out, 1, 0);
	if (r >= 0)
		r = reply.m.op == 0 ? -EIO : reply.m.error;
	if (r >= 0 && out >= 0)
		r = print_fd(out);
	safe_close(out);
	return r;
}

static void usage(void)
{
	fprintf(stderr, "usage: fake-kernel --socket PATH --state-file PATH [--fail-freeze ERRNO]\n"
			"                   [--state-idle-ms MS]\n"
			"       fake-kernel --control PATH state|fail-freeze ERRNO|"
			"clear-fail-freeze|fail-open ERRNO|\n"
			"                   fail-finish ERRNO [SESSION]|device-files 1|0\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"state-file", required_argument, NULL, 'f'},
	    {"fail-freeze", required_argument, NULL, 'F'},
	    {"state-idle-ms", required_argument, NULL, 'i'},
	    {"control", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	const char *socket_path = NULL, *state_path = NULL, *control_path = NULL;
	int c, fail_freeze = 0, state_idle_ms = STATE_IDLE_MS_DEFAULT, r;

	/* The shim may be preloaded here too; it must never act for us. */
	unsetenv(FAKE_WIRE_ENV);
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) >= 0) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'f':
			state_path = optarg;
			break;
		case 'F':
			if (errno_arg(optarg, &fail_freeze) < 0)
				return usage(), 2;
			break;
		case 'i':
			/* the same 0..4095 as an errno: milliseconds enough */
			if (errno_arg(optarg, &state_idle_ms) < 0)
				return usage(), 2;
			break;
		case 'c':
			control_path = optarg;
			break;
		default:
			return usage(), c == 'h' ? 0 : 2;
		}
	}
	if (control_path) {
		r = control_main(control_path, argc - optind, argv + optind);
		if (r < 0)
			fprintf(stderr, "fake-kernel: control: %s\n", strerror(-r));
		return r < 0 ? 1 : 0;
	}
	if (!socket_path || !state_path || optind != argc)
		return usage(), 2;
	return server_main(socket_path, state_path, fail_freeze, state_idle_ms);
}
