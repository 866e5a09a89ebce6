/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A milestone every VMM of a run reaches (registered, resumed, ...). Each
 * VMM adds one to a shared counter; the one that completes the count
 * writes one byte to the driver's notify pipe. The driver thus wakes once
 * per milestone instead of once per VMM, and stays off the CPU while the
 * daemon works.
 *
 * The counter is $BENCH_SYNC_DIR/NAME (8 zero bytes, made by the driver),
 * the pipe is $BENCH_NOTIFY_FD, the count $BENCH_COUNT. Without them (a
 * VMM run by hand) it does nothing.
 */

int bench_milestone(const char *name);
