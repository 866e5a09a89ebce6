/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fake kernel's rules, through the project's own src/kernel/luo.c and
 * kexec.c and the LD_PRELOAD shim: every test starts its own fake-kernel
 * server ($FAKE_KERNEL_BIN) in a fresh directory. Run with
 * LD_PRELOAD=fakeluo-preload.so (meson's test environment sets it).
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-wire.h"
#include "kexec.h"
#include "luo.h"
#include "macro.h"

#define KEXEC_FILE_UNLOAD 0x01
#define KEXEC_FILE_ON_CRASH 0x02
#define KEXEC_FILE_NO_INITRAMFS 0x04

struct fixture {
	char dir[64];
	char sock[96];
	char state[96];
	pid_t pid;
};

static int wait_for_file(const char *path)
{
	for (int i = 0; i < 500; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static int setup(void **state)
{
	const char *bin = getenv("FAKE_KERNEL_BIN");
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(bin);
	assert_non_null(f);
	strcpy(f->dir, "/tmp/fake-kernel-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/sock", f->dir);
	snprintf(f->state, sizeof(f->state), "%s/state.json", f->dir);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		execl(bin, bin, "--socket", f->sock, "--state-file", f->state, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(wait_for_file(f->state), 0);
	assert_int_equal(setenv(FAKE_WIRE_ENV, f->sock, 1), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char tmp[128];
	int status;

	assert_int_equal(kill(f->pid, SIGTERM), 0);
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	/* A clean exit also means no leak report from an ASan build. */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(f->state);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->state);
	unlink(tmp);
	unlink(f->sock);
	assert_int_equal(rmdir(f->dir), 0);
	unsetenv(FAKE_WIRE_ENV);
	free(f);
	return 0;
}

/* A control command; "state" returns the parsed JSON. */
static struct json_object *control(const char *cmd, int *ret)
{
	struct {
		struct fake_msg m;
		char data[256];
	} req = {.m = {.op = FAKE_OP_CONTROL}}, reply = {};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = getenv(FAKE_WIRE_ENV);
	struct json_object *o = NULL;
	int fd, out = -1;
	char buf[65536] = "";

	strcpy(sa.sun_path, path);
	req.m.data_len = strlen(cmd);
	memcpy(req.data, cmd, req.m.data_len);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fake_send(fd, &req.m, NULL, 0), 0);
	assert_true(fake_recv(fd, &reply.m, sizeof(reply), &out, 1, 0) >= 0);
	close(fd);
	if (ret)
		*ret = reply.m.error;
	if (out >= 0) {
		assert_true(pread(out, buf, sizeof(buf) - 1, 0) > 0);
		o = json_tokener_parse(buf);
		assert_non_null(o);
		close(out);
	}
	return o;
}

static struct json_object *get_state(void)
{
	return control("state", NULL);
}

static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v;
}

static struct json_object *state_session(struct json_object *st, const char *name)
{
	struct json_object *a = jget(st, "sessions");

	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *s = json_object_array_get_idx(a, i);

		if (strcmp(json_object_get_string(jget(s, "name")), name) == 0)
			return s;
	}
	return NULL;
}

static size_t state_n_sessions(void)
{
	struct json_object *st = get_state();
	size_t n = json_object_array_length(jget(st, "sessions"));

	json_object_put(st);
	return n;
}

static int memfd_with(const char *pattern, size_t size)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	for (size_t off = 0; pattern && off < size; off += strlen(pattern))
		assert_true(pwrite(fd, pattern, MIN(strlen(pattern), size - off), off) > 0);
	return fd;
}

/* A file with just enough of a bzImage header for the fake's probe. */
static int image_file(size_t size, bool magic)
{
	int fd = memfd_with(NULL, size);

	if (magic)
		assert_int_equal(pwrite(fd, "HdrS", 4, 0x202), 4);
	return fd;
}

static void load_image(void)
{
	int fd = image_file(4096, true);

	assert_int_equal(kexec_load(fd, -1, "console=ttyS0 liveupdate=on"), 0);
	close(fd);
}

/* Jump: the caller dies by SIGKILL like a machine entering a new kernel. */
static void kexec_in_child(void)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		kexec_reboot();
		_exit(100);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static int raw_session_ioctl(int fd, unsigned long req, const char *name, uint32_t size)
{
	struct {
		struct luo_create_session_arg a;
		uint8_t extra[64];
	} arg = {.a = {.size = size, .fd = -1}};

	memcpy(arg.a.name, name, MIN(strlen(name), sizeof(arg.a.name)));
	if (ioctl(fd, req, &arg) < 0)
		return -errno;
	return arg.a.fd;
}

/* ---- the tests ---- */

static void test_device_exclusive(void **state)
{
	char name[LUO_SESSION_NAME_SIZE];
	int fd, s;

	fd = luo_open(NULL);
	assert_true(fd >= 0);
	assert_int_equal(luo_open(NULL), -EBUSY);
	s = luo_create_session(fd, "kept");
	assert_true(s >= 0);
	close(fd);
	/* close() is synchronous: a new open right away succeeds. */
	fd = luo_open(NULL);
	assert_true(fd >= 0);
	close(fd);
	/* The session outlives the device fd. */
	assert_int_equal(luo_get_name(s, name), 0);
	assert_string_equal(name, "kept");
	close(s);
}

static void test_session_names(void **state)
{
	char long_name[LUO_SESSION_NAME_SIZE + 1];
	int fd = luo_open(NULL), s, s2;

	assert_true(fd >= 0);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[LUO_SESSION_NAME_SIZE] = '\0';
	/* No NUL in 64 bytes, and empty: EINVAL from the kernel itself. */
	assert_int_equal(raw_session_ioctl(fd, LUO_IOCTL_CREATE_SESSION, long_name, 72), -EINVAL);
	assert_int_equal(raw_session_ioctl(fd, LUO_IOCTL_CREATE_SESSION, "", 72), -EINVAL);
	long_name[LUO_SESSION_NAME_SIZE - 1] = '\0';
	s = luo_create_session(fd, long_name);
	assert_true(s >= 0);
	assert_int_equal(luo_create_session(fd, long_name), -EEXIST);
	s2 = luo_create_session(fd, "other");
	assert_true(s2 >= 0);
	assert_int_equal(luo_retrieve_session(fd, "other"), -ENOENT);
	close(s);
	close(s2);
	/* Closed sessions free their names at once. */
	s = luo_create_session(fd, "other");
	assert_true(s >= 0);
	close(s);
	close(fd);
}

static void test_arg_size_rules(void **state)
{
	int fd = luo_open(NULL), s;
	struct {
		struct luo_get_name_arg a;
		uint8_t extra[8];
	} gn = {};
	struct luo_finish_arg fin = {.size = sizeof(fin)};

	assert_true(fd >= 0);
	assert_int_equal(raw_session_ioctl(fd, LUO_IOCTL_CREATE_SESSION, "a", 71), -EINVAL);
	s = raw_session_ioctl(fd, LUO_IOCTL_CREATE_SESSION, "a", 72 + 64);
	assert_true(s >= 0); /* larger and zero-filled is fine */
	close(s);
	/* A larger struct with nonzero bytes the kernel does not know: E2BIG. */
	gn.a.size = sizeof(gn);
	gn.extra[3] = 1;
	s = luo_create_session(fd, "b");
	assert_int_equal(ioctl(s, LUO_IOCTL_GET_NAME, &gn), -1);
	assert_int_equal(errno, E2BIG);
	gn.extra[3] = 0;
	gn.a.reserved = 1;
	assert_int_equal(ioctl(s, LUO_IOCTL_GET_NAME, &gn), -1);
	assert_int_equal(errno, EINVAL);
	gn.a.reserved = 0;
	gn.a.size = 71;
	assert_int_equal(ioctl(s, LUO_IOCTL_GET_NAME, &gn), -1);
	assert_int_equal(errno, EINVAL);
	/* Incoming-only ioctls on an outgoing session; unknown numbers. */
	assert_int_equal(ioctl(s, LUO_IOCTL_FINISH, &fin), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(luo_retrieve_fd(s, 1), -EINVAL);
	assert_int_equal(ioctl(s, _IO(LUO_IOCTL_TYPE, 0x44), &fin), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ioctl(s, _IOW(LUO_IOCTL_TYPE, 0x43, int), &gn), -1);
	assert_int_equal(errno, ENOTTY);
	/* Session ioctls on the device and the other way round. */
	assert_int_equal(ioctl(fd, LUO_IOCTL_FINISH, &fin), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(raw_session_ioctl(s, LUO_IOCTL_CREATE_SESSION, "c", 72), -EINVAL);
	assert_int_equal(ioctl(s, LUO_IOCTL_GET_NAME, NULL), -1);
	assert_int_equal(errno, EFAULT);
	close(s);
	close(fd);
}

static void test_preserve_rules(void **state)
{
	int fd = luo_open(NULL), s, s2, m, reg, sk[2], opath, huge;
	char path[] = "/tmp/fake-kernel-reg-XXXXXX";

	assert_true(fd >= 0);
	s = luo_create_session(fd, "p");
	s2 = luo_create_session(fd, "p2");
	m = memfd_with("abc", 100);
	reg = mkstemp(path);
	assert_true(reg >= 0);
	unlink(path); /* unlinked, but not shmem: still no handler */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk), 0);

	assert_int_equal(luo_preserve_fd(s, reg, 1), -ENOENT);
	assert_int_equal(luo_preserve_fd(s, sk[0], 1), -ENOENT);
	assert_int_equal(luo_preserve_fd(s, 999, 1), -EBADF);
	assert_int_equal(luo_preserve_fd(s, -1, 1), -EBADF);
	opath = open("/proc/self/fd/0", O_PATH | O_CLOEXEC);
	assert_int_equal(luo_preserve_fd(s, opath, 1), -EBADF);
	huge = memfd_create("huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (huge >= 0)
		assert_int_equal(luo_preserve_fd(s, huge, 1), -ENOENT);

	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	/* The token is checked before the fd. */
	assert_int_equal(luo_preserve_fd(s, 999, 1), -EEXIST);
	/* The same file, in this or any session, is EBUSY (luo_preserved_files). */
	assert_int_equal(luo_preserve_fd(s, m, 2), -EBUSY);
	assert_int_equal(luo_preserve_fd(s2, m, 1), -EBUSY);
	/* Sealed memfds are fine: every seal Linux has is one memfd_luo knows. */
	{
		int sealed = memfd_with("x", 10);

		assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
		assert_int_equal(luo_preserve_fd(s2, sealed, 5), 0);
		close(sealed);
	}
	safe_close(huge);
	close(opath);
	close(sk[0]);
	close(sk[1]);
	close(reg);
	close(m);
	close(s);
	close(s2);
	close(fd);
}

static void test_close_outgoing_unpreserves(void **state)
{
	int fd = luo_open(NULL), s, m = memfd_with("x", 10);
	struct json_object *st;

	s = luo_create_session(fd, "cancel");
	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	st = get_state();
	assert_int_equal(json_object_array_length(jget(state_session(st, "cancel"), "files")), 1);
	json_object_put(st);
	close(s);
	assert_int_equal(state_n_sessions(), 0);
	/* Unpreserved: the memfd is free to be preserved again. */
	s = luo_create_session(fd, "cancel");
	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	close(s);
	close(m);
	close(fd);
}

static void test_round_trip(void **state)
{
	const size_t size = 3 * 4096 + 123;
	int fd = luo_open(NULL), s, m, r;
	_cleanup_free_ char *want = malloc(size), *got = malloc(size);
	struct json_object *st;
	struct stat a, b;

	for (size_t i = 0; i < size; i++)
		want[i] = (char)(i * 7 + 3);
	m = memfd_with(NULL, size);
	assert_int_equal(pwrite(m, want, size, 0), (ssize_t)size);
	assert_int_equal(lseek(m, 77, SEEK_SET), 77);
	s = luo_create_session(fd, "vm-1");
	assert_int_equal(luo_preserve_fd(s, m, 0x1234), 0);
	load_image();
	close(fd);
	kexec_in_child();

	st = get_state();
	assert_int_equal(json_object_get_int(jget(st, "boot")), 2);
	assert_true(json_object_get_boolean(jget(state_session(st, "vm-1"), "incoming")));
	assert_null(jget(st, "kexec"));
	json_object_put(st);
	/* The old boot's session is dead. */
	assert_int_equal(luo_get_name(s, (char[64]){}), -EIO);
	close(s);

	fd = luo_open(NULL);
	assert_true(fd >= 0);
	s = luo_retrieve_session(fd, "vm-1");
	assert_true(s >= 0);
	assert_int_equal(luo_retrieve_session(fd, "vm-1"), -EINVAL);
	assert_int_equal(luo_retrieve_fd(s, 0x9999), -ENOENT);
	r = luo_retrieve_fd(s, 0x1234);
	assert_true(r >= 0);
	assert_int_equal(fcntl(r, F_GETFD), FD_CLOEXEC);
	assert_int_equal(lseek(r, 0, SEEK_CUR), 77);
	assert_int_equal(pread(r, got, size, 0), (ssize_t)size);
	assert_memory_equal(got, want, size);
	/* A new file: the old boot's memfd no longer shares its pages. */
	assert_int_equal(fstat(m, &a), 0);
	assert_int_equal(fstat(r, &b), 0);
	assert_true(a.st_ino != b.st_ino);
	assert_int_equal(pwrite(m, "zz", 2, 0), 2);
	assert_int_equal(pread(r, got, 2, 0), 2);
	assert_memory_equal(got, want, 2);
	/* Retrieving again gives the same file. */
	{
		int again = luo_retrieve_fd(s, 0x1234);

		assert_true(again >= 0);
		assert_int_equal(fstat(again, &a), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		close(again);
	}
	/* Preserving into an incoming session is refused. */
	assert_int_equal(luo_preserve_fd(s, m, 5), -EINVAL);
	assert_int_equal(luo_finish(s), 0);
	close(s);
	close(r);
	close(m);
	close(fd);
	assert_int_equal(state_n_sessions(), 0);
}

static void test_finish_frees_unretrieved(void **state)
{
	int fd = luo_open(NULL), s, m1 = memfd_with("one", 4096), m2 = memfd_with("two", 8192), r;
	struct json_object *st, *se;

	s = luo_create_session(fd, "f");
	assert_int_equal(luo_preserve_fd(s, m1, 1), 0);
	assert_int_equal(luo_preserve_fd(s, m2, 2), 0);
	load_image();
	close(fd);
	close(s);
	kexec_in_child();
	assert_int_equal(state_n_sessions(), 0); /* closed before the jump: cancelled */

	fd = luo_open(NULL);
	s = luo_create_session(fd, "f");
	assert_int_equal(luo_preserve_fd(s, m1, 1), 0);
	assert_int_equal(luo_preserve_fd(s, m2, 2), 0);
	load_image();
	close(fd);
	kexec_in_child();
	close(s);

	fd = luo_open(NULL);
	s = luo_retrieve_session(fd, "f");
	r = luo_retrieve_fd(s, 2);
	assert_true(r >= 0);
	st = get_state();
	se = state_session(st, "f");
	assert_int_equal(json_object_array_length(jget(se, "files")), 2);
	assert_true(json_object_get_boolean(jget(se, "retrieved")));
	json_object_put(st);
	/* A retrieved file is still LUO's until FINISH: EBUSY for a new session. */
	{
		int out = luo_create_session(fd, "f");

		assert_true(out >= 0); /* names of incoming sessions do not clash */
		assert_int_equal(luo_preserve_fd(out, r, 9), -EBUSY);
		assert_int_equal(luo_finish(s), 0);
		assert_int_equal(luo_preserve_fd(out, r, 9), 0);
		close(out);
	}
	st = get_state();
	se = state_session(st, "f");
	assert_true(json_object_get_boolean(jget(se, "finished")));
	assert_int_equal(json_object_array_length(jget(se, "files")), 0);
	json_object_put(st);
	assert_int_equal(luo_retrieve_fd(s, 1), -ENOENT);
	assert_int_equal(luo_finish(s), 0);
	close(s);
	assert_int_equal(luo_retrieve_session(fd, "f"), -ENOENT);
	close(r);
	close(m1);
	close(m2);
	close(fd);
}

static void test_close_retrieved_finishes(void **state)
{
	int fd = luo_open(NULL), s, m = memfd_with("x", 100);
	struct json_object *st;

	s = luo_create_session(fd, "c");
	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	load_image();
	close(fd);
	kexec_in_child();
	close(s);
	fd = luo_open(NULL);
	s = luo_retrieve_session(fd, "c");
	assert_true(s >= 0);
	close(s);
	assert_int_equal(state_n_sessions(), 0);
	assert_int_equal(luo_retrieve_session(fd, "c"), -ENOENT);
	close(fd);
	/* A session never retrieved does not survive a second jump. */
	fd = luo_open(NULL);
	s = luo_create_session(fd, "d");
	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	load_image();
	close(fd);
	kexec_in_child();
	close(s);
	load_image();
	kexec_in_child();
	st = get_state();
	assert_int_equal(json_object_get_int(jget(st, "boot")), 4);
	assert_int_equal(json_object_array_length(jget(st, "sessions")), 0);
	json_object_put(st);
	close(m);
}

static void test_freeze_failure(void **state)
{
	int fd = luo_open(NULL), s, m = memfd_with("x", 100), r;
	char name[LUO_SESSION_NAME_SIZE];
	struct json_object *st;

	assert_int_equal(kexec_reboot(), -EINVAL); /* nothing loaded */
	s = luo_create_session(fd, "z");
	assert_int_equal(luo_preserve_fd(s, m, 1), 0);
	load_image();
	json_object_put(control("fail-freeze 5", &r));
	assert_int_equal(r, 0);
	/* The failure returns here: this process lives on. */
	assert_int_equal(kexec_reboot(), -EIO);
	st = get_state();
	assert_int_equal(json_object_get_int(jget(st, "boot")), 1);
	assert_int_equal(json_object_get_int(jget(st, "freeze_failures")), 1);
	assert_false(json_object_get_boolean(jget(state_session(st, "z"), "incoming")));
	assert_non_null(jget(st, "kexec"));
	json_object_put(st);
	assert_int_equal(luo_get_name(s, name), 0);
	json_object_put(control("clear-fail-freeze", &r));
	close(fd);
	kexec_in_child();
	close(s);
	fd = luo_open(NULL);
	s = luo_retrieve_session(fd, "z");
	assert_true(s >= 0);
	close(s);
	close(fd);
	close(m);
}

static void test_open_error(void **state)
{
	int r;

	json_object_put(control("fail-open 5", &r));
	assert_int_equal(luo_open(NULL), -EIO);
	json_object_put(control("fail-open 0", &r));
	r = luo_open(NULL);
	assert_true(r >= 0);
	close(r);
}

/* fail-finish: FINISH refused, nothing changed, until the knob is cleared. */
static void test_fail_finish(void **state)
{
	int fd = luo_open(NULL), g, h, m = memfd_with("g", 4096), m2 = memfd_with("h", 4096), r;
	struct json_object *st;

	g = luo_create_session(fd, "g");
	h = luo_create_session(fd, "h");
	assert_int_equal(luo_preserve_fd(g, m, 1), 0);
	assert_int_equal(luo_preserve_fd(h, m2, 1), 0);
	load_image();
	close(fd);
	kexec_in_child();
	close(g);
	close(h);

	fd = luo_open(NULL);
	g = luo_retrieve_session(fd, "g");
	h = luo_retrieve_session(fd, "h");
	assert_true(g >= 0 && h >= 0);
	json_object_put(control("fail-finish 16 g", &r));
	assert_int_equal(r, 0);
	assert_int_equal(luo_finish(g), -EBUSY);
	assert_int_equal(luo_finish(g), -EBUSY);
	/* only the session named */
	assert_int_equal(luo_finish(h), 0);
	st = get_state();
	assert_int_equal(json_object_get_int(jget(st, "finish_failures")), 2);
	assert_int_equal(json_object_get_int(jget(st, "fail_finish")), 16);
	assert_false(json_object_get_boolean(jget(state_session(st, "g"), "finished")));
	assert_int_equal(json_object_array_length(jget(state_session(st, "g"), "files")), 1);
	json_object_put(st);
	/* the refused session is whole: its file can still be retrieved */
	r = luo_retrieve_fd(g, 1);
	assert_true(r >= 0);
	close(r);
	json_object_put(control("fail-finish 0", &r));
	assert_int_equal(luo_finish(g), 0);

	json_object_put(control("fail-finish x", &r));
	assert_int_equal(r, -EINVAL);
	json_object_put(control("fail-finish 16 ", &r));
	assert_int_equal(r, -EINVAL);
	close(g);
	close(h);
	close(fd);
	close(m);
	close(m2);
}

/* device-files: a character device is preserved by reference and comes back the same. */
static void test_device_files(void **state)
{
	int fd = luo_open(NULL), s, s2, dev = open("/dev/null", O_RDWR | O_CLOEXEC),
	    dev2 = open("/dev/null", O_RDWR | O_CLOEXEC), r;
	struct json_object *st, *files;
	struct stat a, b;

	assert_true(dev >= 0 && dev2 >= 0);
	s = luo_create_session(fd, "d");
	s2 = luo_create_session(fd, "d2");
	/* no handler for it by default */
	assert_int_equal(luo_preserve_fd(s, dev, 3), -ENOENT);
	json_object_put(control("device-files 1", &r));
	assert_int_equal(r, 0);
	assert_int_equal(luo_preserve_fd(s, dev, 3), 0);
	/* the same device is preserved once */
	assert_int_equal(luo_preserve_fd(s2, dev2, 3), -EBUSY);
	close(s2);
	load_image();
	close(fd);
	kexec_in_child();
	close(s);

	fd = luo_open(NULL);
	s = luo_retrieve_session(fd, "d");
	assert_true(s >= 0);
	st = get_state();
	assert_true(json_object_get_boolean(jget(st, "device_files")));
	files = jget(state_session(st, "d"), "files");
	assert_int_equal(json_object_array_length(files), 1);
	assert_true(json_object_get_boolean(jget(json_object_array_get_idx(files, 0), "device")));
	json_object_put(st);
	r = luo_retrieve_fd(s, 3);
	assert_true(r >= 0);
	assert_int_equal(fstat(r, &a), 0);
	assert_int_equal(fstat(dev, &b), 0);
	assert_true(S_ISCHR(a.st_mode) && a.st_rdev == b.st_rdev);
	assert_int_equal(luo_finish(s), 0);
	close(r);
	json_object_put(control("device-files 2", &r));
	assert_int_equal(r, -EINVAL);
	close(s);
	close(fd);
	close(dev);
	close(dev2);
}

static void test_kexec_load_rules(void **state)
{
	int good = image_file(4096, true), bad = image_file(4096, false),
	    tiny = image_file(0x300, true);
	int empty = memfd_with(NULL, 0), dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char big[3000];
	struct json_object *st, *k;

	assert_int_equal(kexec_load(bad, -1, ""), -ENOEXEC);
	assert_int_equal(kexec_load(tiny, -1, ""), -ENOEXEC);
	assert_int_equal(kexec_load(999, -1, ""), -EBADF);
	assert_int_equal(kexec_load(empty, -1, ""), -EINVAL);
	assert_int_equal(kexec_load(dir, -1, ""), -EINVAL);
	assert_int_equal(kexec_load(good, 999, ""), -EBADF); /* initrd wanted */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* kexec_load() refuses what cannot fit before asking; the kernel refuses too */
	assert_int_equal(kexec_load(good, -1, big), -E2BIG);
	assert_int_equal(syscall(SYS_kexec_file_load, good, -1, sizeof(big), big, KEXEC_FILE_NO_INITRAMFS),
			 -1);
	assert_int_equal(errno, EINVAL);
	/* cmdline_len must count the NUL. */
	assert_int_equal(syscall(SYS_kexec_file_load, good, -1, 3, "abc", KEXEC_FILE_NO_INITRAMFS),
			 -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(syscall(SYS_kexec_file_load, good, -1, 0, NULL,
				 KEXEC_FILE_NO_INITRAMFS | KEXEC_FILE_ON_CRASH),
			 -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(syscall(SYS_kexec_file_load, good, -1, 0, NULL, 0x1000), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(kexec_load(good, good, "quiet"), 0);
	st = get_state();
	k = jget(st, "kexec");
	assert_int_equal(json_object_get_int(jget(k, "image_size")), 4096);
	assert_true(json_object_get_boolean(jget(k, "initrd")));
	assert_string_equal(json_object_get_string(jget(k, "cmdline")), "quiet");
	json_object_put(st);
	/* A failed load keeps what was loaded. */
	assert_int_equal(kexec_load(bad, -1, ""), -ENOEXEC);
	st = get_state();
	assert_non_null(jget(st, "kexec"));
	json_object_put(st);
	assert_int_equal(kexec_unload(), 0);
	st = get_state();
	assert_null(jget(st, "kexec"));
	json_object_put(st);
	assert_int_equal(kexec_reboot(), -EINVAL);
	close(good);
	close(bad);
	close(tiny);
	close(empty);
	close(dir);
}

static void test_session_fd_passing(void **state)
{
	int fd = luo_open(NULL), s, m = memfd_with("x", 10), pair[2];
	pid_t pid;
	int status;

	s = luo_create_session(fd, "shared");
	close(fd);
	/* A child uses and keeps a copy; our close is then not the last one. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
	pid = fork();
	if (pid == 0) {
		char c;

		_exit(luo_preserve_fd(s, m, 1) == 0 && read(pair[1], &c, 1) == 1 ? 0 : 1);
	}
	close(s);
	for (int i = 0; i < 200; i++) {
		struct json_object *st = get_state();
		struct json_object *se = state_session(st, "shared");
		bool done = se && json_object_array_length(jget(se, "files")) == 1;

		json_object_put(st);
		if (done)
			break;
		usleep(10000);
	}
	assert_int_equal(state_n_sessions(), 1);
	assert_int_equal(write(pair[0], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(state_n_sessions(), 0);
	close(pair[0]);
	close(pair[1]);
	close(m);
}

static void test_passthrough_without_env(void **state)
{
	struct json_object *st;
	int fd;

	unsetenv(FAKE_WIRE_ENV);
	fd = luo_open(NULL);
	/* Whatever the real machine says, the fake saw nothing. */
	safe_close(fd);
	assert_int_equal(setenv(FAKE_WIRE_ENV, ((struct fixture *)*state)->sock, 1), 0);
	st = get_state();
	assert_false(json_object_get_boolean(jget(st, "device_open")));
	json_object_put(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_device_exclusive),
	    T(test_session_names),
	    T(test_arg_size_rules),
	    T(test_preserve_rules),
	    T(test_close_outgoing_unpreserves),
	    T(test_round_trip),
	    T(test_finish_frees_unretrieved),
	    T(test_close_retrieved_finishes),
	    T(test_freeze_failure),
	    T(test_open_error),
	    T(test_fail_finish),
	    T(test_device_files),
	    T(test_kexec_load_rules),
	    T(test_session_fd_passing),
	    T(test_passthrough_without_env),
#undef T
	};

	/* The shim must be preloaded, or every test would hit the real kernel. */
	if (!getenv("LD_PRELOAD") || !strstr(getenv("LD_PRELOAD"), "fakeluo")) {
		fprintf(stderr, "test-fake-kernel: run with LD_PRELOAD=.../fakeluo-preload.so\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
