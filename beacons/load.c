/*  beacons/load.c — beacons.load: the kernel's load averages.

        avg   reads <proc>/loadavg; value = the 1-minute load average

    Event data: {value, load1, load5, load15, running, threads}, where
    running/threads are the runnable and total scheduling entities the
    kernel reports beside the averages. The one arg, `proc` (default
    /proc), lets a container watch its host's /proc mounted elsewhere, and
    tests a fixture tree.
*/
#include "probe.h"

#include <stdlib.h>

#define S_FN "beacons.load.avg"

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    return probe_prepare_proc_root(params, prepared, S_FN, err, errsize);
}

static void s_release(void *prepared)
{
    free(prepared);
}

static int s_avg(nerve_beacon_call_t *call)
{
    probe_proc_root_t *self = call->prepared;
    char path[PATH_MAX], text[256];
    if (probe_read_file(self->proc, "loadavg", path, sizeof path, text, sizeof text) < 0)
        return probe_fail(call, NERVE_EIO, "%s: %s", path, strerror(errno));
    double l1, l5, l15;
    unsigned running, threads;
    if (sscanf(text, "%lf %lf %lf %u/%u", &l1, &l5, &l15, &running, &threads) != 5)
        return probe_fail(call, NERVE_EPARSE,
                          "%s: expected \"load1 load5 load15 r/t …\", got "
                          "\"%.40s\"",
                          path, text);
    char buf[256];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_num(&d, "value", l1);
    nerve_data_num(&d, "load1", l1);
    nerve_data_num(&d, "load5", l5);
    nerve_data_num(&d, "load15", l15);
    nerve_data_int(&d, "running", running);
    nerve_data_int(&d, "threads", threads);
    return probe_emit(call, call->tag, &d);
}

static const nerve_module_fn_t s_functions[] = {
    {"avg",
     {.beacon = s_avg},
     "load averages from /proc/loadavg; value = 1-minute load",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "load", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
