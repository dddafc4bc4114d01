/*  fuzz_utf8.h — a reference UTF-8 check for the fuzz targets.

    Decodes by code points, written apart from lib/wire.c's byte ranges, so
    that a target can compare the library's verdict with an independent
    one: overlong forms, surrogates and code points past U+10FFFF are
    invalid. Header-only: each target includes it once.
*/
#ifndef NERVE_FUZZ_UTF8_H
#define NERVE_FUZZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool fuzz_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t c = p[i], min;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, c &= 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            c = c << 6 | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

#endif
