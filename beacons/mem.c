/*  beacons/mem.c — beacons.mem: memory in use.

        usage   reads <proc>/meminfo; value = percent of memory in use

    "In use" is what the kernel could not hand to a new program without
    swapping: MemTotal - MemAvailable, the figure `free` shows as used
    plus what is not reclaimable. Kernels before 3.14 have no MemAvailable;
    there MemFree + Buffers + Cached stands in for it (and data.estimated
    is true). Event data: {value, total_bytes, available_bytes,
    used_bytes, swap_total_bytes, swap_used_bytes, swap_percent}. Arg
    `proc` (default /proc).
*/
#include "probe.h"

#include <stdlib.h>

#define S_FN "beacons.mem.usage"

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    return probe_prepare_proc_root(params, prepared, S_FN, err, errsize);
}

static void s_release(void *prepared)
{
    free(prepared);
}

enum { S_TOTAL, S_AVAILABLE, S_FREE, S_BUFFERS, S_CACHED, S_SWAP_TOTAL, S_SWAP_FREE, S_COUNT };
static const char *const s_keys[S_COUNT] = {"MemTotal", "MemAvailable", "MemFree", "Buffers",
                                            "Cached",   "SwapTotal",    "SwapFree"};

static int s_usage(nerve_beacon_call_t *call)
{
    probe_proc_root_t *self = call->prepared;
    char path[PATH_MAX], text[8192];
    if (probe_read_file(self->proc, "meminfo", path, sizeof path, text, sizeof text) < 0)
        return probe_fail(call, NERVE_EIO, "%s: %s", path, strerror(errno));
    unsigned long long kb[S_COUNT] = {0};
    bool have[S_COUNT] = {false};
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        for (int i = 0; i < S_COUNT; i++) {
            if (strcmp(line, s_keys[i]) != 0)
                continue;
            char *end;
            errno = 0;
            unsigned long long v = strtoull(colon + 1, &end, 10);
            if (errno == 0 && end != colon + 1) {
                kb[i] = v;
                have[i] = true;
            }
        }
    }
    if (!have[S_TOTAL] || kb[S_TOTAL] == 0)
        return probe_fail(call, NERVE_EPARSE, "%s: no MemTotal line", path);
    bool estimated = !have[S_AVAILABLE];
    unsigned long long avail =
        estimated ? kb[S_FREE] + kb[S_BUFFERS] + kb[S_CACHED] : kb[S_AVAILABLE];
    if (avail > kb[S_TOTAL])
        avail = kb[S_TOTAL];
    unsigned long long used = kb[S_TOTAL] - avail;
    unsigned long long swap_used =
        kb[S_SWAP_FREE] < kb[S_SWAP_TOTAL] ? kb[S_SWAP_TOTAL] - kb[S_SWAP_FREE] : 0;

    char buf[512];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_num(&d, "value", 100.0 * (double)used / (double)kb[S_TOTAL]);
    nerve_data_int(&d, "total_bytes", (int64_t)(kb[S_TOTAL] * 1024));
    nerve_data_int(&d, "available_bytes", (int64_t)(avail * 1024));
    nerve_data_int(&d, "used_bytes", (int64_t)(used * 1024));
    nerve_data_int(&d, "swap_total_bytes", (int64_t)(kb[S_SWAP_TOTAL] * 1024));
    nerve_data_int(&d, "swap_used_bytes", (int64_t)(swap_used * 1024));
    nerve_data_num(&d, "swap_percent",
                   kb[S_SWAP_TOTAL] ? 100.0 * (double)swap_used / (double)kb[S_SWAP_TOTAL] : 0.0);
    if (estimated)
        nerve_data_bool(&d, "estimated", true);
    return probe_emit(call, call->tag, &d);
}

static const nerve_module_fn_t s_functions[] = {
    {"usage",
     {.beacon = s_usage},
     "memory in use from /proc/meminfo; value = percent used",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "mem", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
