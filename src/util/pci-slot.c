/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "pci-slot.h"

static bool hex_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool pci_slot_valid(const char *s)
{
	size_t len, domain;

	if (!s)
		return false;
	len = strnlen(s, PCI_SLOT_MAX + 1);
	/* "DDDD:BB:dd.f": the domain is what comes before the last 8 characters */
	if (len < 12 || len > PCI_SLOT_MAX)
		return false;
	domain = len - 8;
	if (!hex_digits(s, domain) || s[domain] != ':' || !hex_digits(s + domain + 1, 2) ||
	    s[domain + 3] != ':' || !hex_digits(s + domain + 4, 2) || s[domain + 6] != '.')
		return false;
	/* device 0-0x1f, function 0-7 */
	return s[domain + 4] <= '1' && s[domain + 7] >= '0' && s[domain + 7] <= '7';
}
