/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-ram.h"

/* Words per file per turn: small enough that a pause request is seen quickly. */
#define CHUNK_WORDS 4096

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t ram_word(uint64_t seed, uint64_t file, uint64_t index, uint64_t pass)
{
	return splitmix64(splitmix64(splitmix64(seed ^ (file << 48)) ^ pass) ^ index);
}

static uint64_t expected_word(const struct guest_ram *ram, size_t f, uint64_t i)
{
	const struct ram_file *rf = &ram->files[f];

	if (i < rf->pos)
		return ram_word(ram->seed, f, i, rf->pass);
	return rf->pass == 0 ? 0 : ram_word(ram->seed, f, i, rf->pass - 1);
}

int guest_ram_init(struct guest_ram *ram, uint64_t seed, size_t n_files, size_t bytes_per_file)
{
	pthread_condattr_t attr;

	memset(ram, 0, sizeof(*ram));
	if (n_files == 0 || bytes_per_file == 0 || bytes_per_file % sizeof(uint64_t))
		return -EINVAL;
	ram->files = calloc(n_files, sizeof(*ram->files));
	if (!ram->files)
		return -ENOMEM;
	for (size_t i = 0; i < n_files; i++)
		ram->files[i].fd = -1;
	ram->seed = seed;
	ram->n_files = n_files;
	ram->bytes_per_file = bytes_per_file;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* writer_nap's deadline */
	pthread_mutex_init(&ram->lock, NULL);
	pthread_cond_init(&ram->cond, &attr);
	pthread_condattr_destroy(&attr);
	return 0;
}

static int map_file(struct guest_ram *ram, size_t index, int fd)
{
	struct ram_file *rf = &ram->files[index];
	void *p;

	p = mmap(NULL, ram->bytes_per_file, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	rf->fd = fd;
	rf->words = p;
	rf->n_words = ram->bytes_per_file / sizeof(uint64_t);
	return 0;
}

int guest_ram_create_file(struct guest_ram *ram, size_t index)
{
	char name[32];
	int fd, r;

	snprintf(name, sizeof(name), "guest-ram-%zu", index);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)ram->bytes_per_file) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = map_file(ram, index, fd);
	if (r < 0)
		close(fd);
	return r;
}

int guest_ram_adopt_file(struct guest_ram *ram, size_t index, int fd, uint64_t pass, uint64_t pos)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != ram->bytes_per_file ||
	    pos >= ram->bytes_per_file / sizeof(uint64_t))
		return -EBADMSG;
	r = map_file(ram, index, fd);
	if (r < 0)
		return r;
	ram->files[index].pass = pass;
	ram->files[index].pos = pos;
	return 0;
}

void guest_ram_done(struct guest_ram *ram)
{
	guest_ram_stop(ram);
	for (size_t i = 0; ram->files && i < ram->n_files; i++) {
		if (ram->files[i].words)
			munmap(ram->files[i].words, ram->bytes_per_file);
		if (ram->files[i].fd >= 0)
			close(ram->files[i].fd);
	}
	free(ram->files);
	if (ram->n_files) {
		pthread_mutex_destroy(&ram->lock);
		pthread_cond_destroy(&ram->cond);
	}
	memset(ram, 0, sizeof(*ram));
}

/* Returns how many words it wrote. */
static uint64_t write_chunk(struct guest_ram *ram, size_t f)
{
	struct ram_file *rf = &ram->files[f];
	uint64_t start = rf->pos, end = rf->pos + CHUNK_WORDS;

	if (end > rf->n_words)
		end = rf->n_words;
	for (uint64_t i = rf->pos; i < end; i++)
		rf->words[i] = ram_word(ram->seed, f, i, rf->pass);
	rf->pos = end;
	if (rf->pos == rf->n_words) {
		rf->pos = 0;
		rf->pass++;
	}
	return end - start;
}

/* Park while main wants us paused; false when we should quit. */
static bool writer_park(struct guest_ram *ram)
{
	bool go_on;

	pthread_mutex_lock(&ram->lock);
	ram->parked = true;
	pthread_cond_broadcast(&ram->cond);
	while (atomic_load(&ram->pause) && !ram->quit)
		pthread_cond_wait(&ram->cond, &ram->lock);
	ram->parked = false;
	go_on = !ram->quit;
	pthread_mutex_unlock(&ram->lock);
	return go_on;
}

/* Sleep nap_us, or less if main wants us paused: a nap must not slow a freeze. */
static void writer_nap(struct guest_ram *ram)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ram->nap_us / 1000000;
	until.tv_nsec += (long)(ram->nap_us % 1000000) * 1000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ram->lock);
	while (!atomic_load(&ram->pause) &&
	       pthread_cond_timedwait(&ram->cond, &ram->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&ram->lock);
}

static void *writer(void *userdata)
{
	struct guest_ram *ram = userdata;

	for (;;) {
		uint64_t n = 0;

		if (atomic_load_explicit(&ram->pause, memory_order_acquire) && !writer_park(ram))
			return NULL;
		for (size_t f = 0; f < ram->n_files; f++)
			n += write_chunk(ram, f);
		atomic_fetch_add_explicit(&ram->words_written, n, memory_order_relaxed);
		if (ram->nap_us)
			writer_nap(ram);
	}
}

int guest_ram_start(struct guest_ram *ram)
{
	int r;

	if (ram->running)
		return 0;
	atomic_store(&ram->pause, false);
	ram->quit = false;
	r = pthread_create(&ram->thread, NULL, writer, ram);
	if (r)
		return -r;
	ram->running = true;
	return 0;
}

void guest_ram_pause(struct guest_ram *ram)
{
	if (!ram->running)
		return;
	pthread_mutex_lock(&ram->lock);
	atomic_store(&ram->pause, true);
	pthread_cond_broadcast(&ram->cond); /* a napping writer wakes to park */
	while (!ram->parked)
		pthread_cond_wait(&ram->cond, &ram->lock);
	pthread_mutex_unlock(&ram->lock);
}

void guest_ram_resume(struct guest_ram *ram)
{
	if (!ram->running)
		return;
	pthread_mutex_lock(&ram->lock);
	atomic_store(&ram->pause, false);
	pthread_cond_broadcast(&ram->cond);
	pthread_mutex_unlock(&ram->lock);
}

void guest_ram_stop(struct guest_ram *ram)
{
	if (!ram->running)
		return;
	pthread_mutex_lock(&ram->lock);
	ram->quit = true;
	atomic_store(&ram->pause, true);
	pthread_cond_broadcast(&ram->cond);
	pthread_mutex_unlock(&ram->lock);
	pthread_join(ram->thread, NULL);
	ram->running = false;
}

uint64_t guest_ram_words_written(struct guest_ram *ram)
{
	return atomic_load_explicit(&ram->words_written, memory_order_relaxed);
}

uint64_t guest_ram_checksum(const struct guest_ram *ram)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	/*
	 * FNV-1a over 64-bit words rather than bytes: it runs inside the
	 * blackout (before FROZEN), so it must cost as little as it can while
	 * still covering every byte (file sizes are whole MiB).
	 */
	for (size_t f = 0; f < ram->n_files; f++) {
		const struct ram_file *rf = &ram->files[f];

		for (uint64_t i = 0; i < rf->n_words; i++) {
			h ^= rf->words[i];
			h *= 0x100000001b3ULL;
		}
	}
	return h;
}

uint64_t guest_ram_verify(const struct guest_ram *ram, char *err, size_t err_size)
{
	uint64_t bad = 0;

	for (size_t f = 0; f < ram->n_files; f++) {
		const struct ram_file *rf = &ram->files[f];

		for (uint64_t i = 0; i < rf->n_words; i++) {
			uint64_t want = expected_word(ram, f, i);

			if (rf->words[i] == want)
				continue;
			if (bad++ == 0)
				snprintf(err, err_size,
					 "guest-ram-%zu word %" PRIu64 " (pass %" PRIu64
					 ", position %" PRIu64 "): expected %016" PRIx64
					 ", found %016" PRIx64,
					 f, i, rf->pass, rf->pos, want, rf->words[i]);
		}
	}
	return bad;
}
