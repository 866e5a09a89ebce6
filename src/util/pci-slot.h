/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A PCI function's address as sysfs and libpci name it, "0000:00:07.0":
 * domain (4 to 8 hex digits), bus, device (00-1f) and function (0-7), in
 * lower case. It names a preserved device in the manifest and in status,
 * so it is checked wherever it comes from outside.
 */

#include <stdbool.h>

#define PCI_SLOT_MAX 16 /* "ffffffff:ff:1f.7" */
typedef char PciSlot[PCI_SLOT_MAX + 1];

bool pci_slot_valid(const char *s);
