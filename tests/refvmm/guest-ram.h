/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The reference VMM's guest RAM: N memfds, mapped shared, and one writer
 * thread that stands in for the vCPUs. It sweeps every file over and over,
 * a chunk of each in turn, writing word[i] = ram_word(seed, file, i, pass).
 * Each file has its own pass and position, so at any stop the content is a
 * pure function of (seed, pass, pos): words below pos hold this pass's
 * value, words from pos on the previous pass's (zero during pass 0, which
 * a fresh memfd already is). Verification recomputes every word from that.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ram_file {
	int fd;
	uint64_t *words;
	size_t n_words;
	uint64_t pass; /* written by the writer thread, read while it is parked */
	uint64_t pos;
};

struct guest_ram {
	uint64_t seed;
	size_t n_files;
	size_t bytes_per_file;
	struct ram_file *files;

	pthread_t thread;
	bool running; /* the thread exists */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool pause; /* what main wants; the writer checks it per chunk */
	bool parked; /* what the writer does, under lock */
	bool quit;
	atomic_uint_fast64_t words_written; /* by the writer, ever: main watches it move */
	unsigned nap_us; /* the writer sleeps this long per turn: a mostly idle vCPU */
};

/* A RAM word as the model wants it. */
uint64_t ram_word(uint64_t seed, uint64_t file, uint64_t index, uint64_t pass);

/* Empty RAM of n_files files; files are then created or adopted one by one. */
int guest_ram_init(struct guest_ram *ram, uint64_t seed, size_t n_files, size_t bytes_per_file);
/* A fresh memfd "guest-ram-<index>", sized and mapped. */
int guest_ram_create_file(struct guest_ram *ram, size_t index);
/* A restored memfd (taken over), which must be bytes_per_file long. */
int guest_ram_adopt_file(struct guest_ram *ram, size_t index, int fd, uint64_t pass, uint64_t pos);
void guest_ram_done(struct guest_ram *ram);

/* Start the writer; pause it and wait until it is parked; let it go on; stop it for good. */
int guest_ram_start(struct guest_ram *ram);
void guest_ram_pause(struct guest_ram *ram);
void guest_ram_resume(struct guest_ram *ram);
void guest_ram_stop(struct guest_ram *ram);

/* How many words the writer has written in this process so far. */
uint64_t guest_ram_words_written(struct guest_ram *ram);

/* FNV-1a 64 over every 64-bit word of every file, in order. Writer paused. */
uint64_t guest_ram_checksum(const struct guest_ram *ram);

/*
 * Compare every word with the model. Writer paused. Returns the number of
 * mismatching words (0: all good) and describes the first in err.
 */
uint64_t guest_ram_verify(const struct guest_ram *ram, char *err, size_t err_size);
