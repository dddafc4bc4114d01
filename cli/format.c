/*  format.c — values, times and durations as the CLI prints them.

    Machine output is JSON through nerve_obj_to_json (the same encoding
    everywhere: bin as hex, floats that stay floats). Human output keeps
    lines short: compact JSON cut with "…", clock times without the date
    in a live stream, durations in the largest two units.
*/
#include "cli.h"

#include <nerve/value.h>

#include <string.h>
#include <time.h>

int cli_print_json(FILE *out, const msgpack_object *obj)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int rc = nerve_obj_to_json(obj, &buf);
    if (rc == 0) {
        fwrite(buf.data, 1, buf.size, out);
        fputc('\n', out);
    }
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

int cli_print_packed(FILE *out, const msgpack_sbuffer *packed)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack(packed->data, packed->size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS)
        rc = cli_print_json(out, &obj);
    msgpack_zone_destroy(&zone);
    return rc;
}

const char *cli_json(const msgpack_object *obj, char *buf, size_t bufsize)
{
    size_t n = nerve_obj_to_json_buf(obj, buf, bufsize);
    if (n >= bufsize && bufsize > 8) {
        /* Cut on a UTF-8 boundary, then mark the cut. */
        size_t end = bufsize - 4;
        while (end > 0 && ((unsigned char)buf[end] & 0xC0) == 0x80)
            end--;
        memcpy(buf + end, "…", 4); /* 3 bytes and the NUL */
    }
    return buf;
}

static const char *s_local(uint64_t ns, const char *fmt, char *buf, size_t size)
{
    time_t secs = (time_t)(ns / 1000000000ull);
    struct tm tm;
    if (!localtime_r(&secs, &tm) || strftime(buf, size, fmt, &tm) == 0)
        snprintf(buf, size, "?");
    return buf;
}

const char *cli_fmt_clock(uint64_t ns, char *buf, size_t size)
{
    char hms[16];
    s_local(ns, "%H:%M:%S", hms, sizeof hms);
    snprintf(buf, size, "%s.%03u", hms, (unsigned)(ns / 1000000ull % 1000));
    return buf;
}

const char *cli_fmt_date(uint64_t ns, char *buf, size_t size)
{
    return s_local(ns, "%Y-%m-%d %H:%M:%S", buf, size);
}

const char *cli_fmt_duration_ms(uint64_t ms, char *buf, size_t size)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, size, "%ums", (unsigned)ms);
    else if (ms < 60000)
        snprintf(buf, size, ms % 1000 ? "%.1fs" : "%.0fs", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(buf, size, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
    else if (s < 86400)
        snprintf(buf, size, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s / 60 % 60));
    else
        snprintf(buf, size, "%llud%uh", (unsigned long long)(s / 86400),
                 (unsigned)(s / 3600 % 24));
    return buf;
}

const char *cli_get_str(const msgpack_object *map, const char *key, char *buf, size_t size)
{
    const char *p;
    size_t n;
    if (nerve_obj_str(nerve_obj_get(map, key), &p, &n))
        snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    else
        buf[0] = '\0';
    return buf;
}

uint64_t cli_get_u64(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = nerve_obj_get(map, key);
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return o->via.u64;
    return 0;
}

bool cli_get_bool(const msgpack_object *map, const char *key, bool dflt)
{
    const msgpack_object *o = nerve_obj_get(map, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN ? o->via.boolean : dflt;
}
