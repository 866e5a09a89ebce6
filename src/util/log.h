/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging for the daemon and the CLI. Messages go to stderr with the
 * sd-daemon "<N>" level prefix when stderr is the journal (JOURNAL_STREAM
 * names our stderr), so journald records the priority; otherwise plain text.
 * Library code (src/libvmm, src/kernel) never logs: it returns -errno and the
 * caller decides.
 */

#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level);
void log_set_prefix(const char *prefix);

/* Returns -abs(error) when error != 0, so callers can write return log_..._errno(r, ...). */
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...) log_internal(level, error, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_internal(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_internal(LOG_NOTICE, e, __VA_ARGS__)
#define log_oom() log_internal(LOG_ERR, ENOMEM, "Out of memory.")
