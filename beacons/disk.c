/*  beacons/disk.c — beacons.disk: file system usage per mount point.

        usage   statvfs() of each mount listed; one event per mount,
                value = percent used

    Percent used is df's: used / (used + available to unprivileged users),
    so a disk whose reserved blocks are all that is left reads 100%.
    Each mount reports on its own tag, the configured tag plus one segment
    naming the mount — "root" for /, otherwise the path without its
    leading slash and with '/' turned into '-' (/var/lib → var-lib) — so
    /disk/usage/<host>/var-lib can be matched on its own, and onchange
    compares each mount with itself.

    Args: `mounts` (a list of paths, or one path; default [/]); `root`
    (default /) is prepended to each, for a host file system mounted in a
    container. A mount that cannot be read fails the run (error event naming
    it) after the others have been sent. Event data: {value, mount,
    total_bytes, used_bytes, available_bytes, inodes_percent}.
*/
#include "probe.h"

#include <stdlib.h>
#include <sys/statvfs.h>

#define S_FN         "beacons.disk.usage"
#define S_MOUNTS_MAX 64

typedef struct disk_mount {
    char path[PATH_MAX];
    char tag_suffix[NERVE_TAG_MAX + 1];
} disk_mount_t;

typedef struct disk_state {
    char root[PATH_MAX];
    size_t nmounts;
    disk_mount_t mounts[];
} disk_state_t;

/*  "/" → "root", "/var/lib/" → "var-lib". */
static void s_segment(const char *mount, char *out, size_t size)
{
    while (*mount == '/')
        mount++;
    if (!*mount) {
        snprintf(out, size, "root");
        return;
    }
    size_t n = 0;
    for (; *mount && n + 1 < size; mount++)
        out[n++] = *mount == '/' ? '-' : *mount;
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
}

static int s_add(disk_state_t *self, const msgpack_object *v, char *err, size_t errsize)
{
    const char *s;
    size_t n;
    if (!nerve_obj_str(v, &s, &n) || n == 0 || n >= PATH_MAX || s[0] != '/' || memchr(s, '\0', n)) {
        snprintf(err, errsize, "%s: 'mounts' must hold absolute paths", S_FN);
        return NERVE_EINVAL;
    }
    disk_mount_t *m = &self->mounts[self->nmounts++];
    memcpy(m->path, s, n);
    m->path[n] = '\0';
    s_segment(m->path, m->tag_suffix, sizeof m->tag_suffix);
    return 0;
}

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    static const char *const keys[] = {"mounts", "root", NULL};
    int rc = probe_check_keys(params, keys, S_FN, err, errsize);
    if (rc != 0)
        return rc;
    const msgpack_object *mounts = nerve_obj_get(params, "mounts");
    size_t count = !mounts ? 1 : mounts->type == MSGPACK_OBJECT_ARRAY ? mounts->via.array.size : 1;
    if (count == 0 || count > S_MOUNTS_MAX) {
        snprintf(err, errsize, "%s: 'mounts' must list 1 to %d paths", S_FN, S_MOUNTS_MAX);
        return NERVE_EINVAL;
    }
    disk_state_t *self = calloc(1, sizeof *self + count * sizeof self->mounts[0]);
    if (!self)
        return NERVE_ENOMEM;
    rc = probe_param_str(params, "root", "/", self->root, sizeof self->root, NULL, S_FN, err,
                         errsize);
    static const msgpack_object slash = {.type = MSGPACK_OBJECT_STR, .via.str = {1, "/"}};
    if (rc == 0 && !mounts)
        rc = s_add(self, &slash, err, errsize);
    else if (rc == 0 && mounts->type != MSGPACK_OBJECT_ARRAY)
        rc = s_add(self, mounts, err, errsize);
    else
        for (uint32_t i = 0; rc == 0 && i < count; i++)
            rc = s_add(self, &mounts->via.array.ptr[i], err, errsize);
    if (rc != 0) {
        free(self);
        return rc;
    }
    *prepared = self;
    return 0;
}

static void s_release(void *prepared)
{
    free(prepared);
}

static int s_usage(nerve_beacon_call_t *call)
{
    disk_state_t *self = call->prepared;
    int failed = 0;
    char first_error[512] = "";
    bool slash_root = strcmp(self->root, "/") == 0;
    for (size_t i = 0; i < self->nmounts; i++) {
        const disk_mount_t *m = &self->mounts[i];
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s%s", slash_root ? "" : self->root, m->path);
        struct statvfs st;
        if (statvfs(path, &st) != 0) {
            if (!failed++)
                snprintf(first_error, sizeof first_error, "%.400s: %s", path, strerror(errno));
            continue;
        }
        unsigned long long frsize = st.f_frsize ? st.f_frsize : st.f_bsize;
        unsigned long long total = (unsigned long long)st.f_blocks * frsize;
        unsigned long long used = (unsigned long long)(st.f_blocks - st.f_bfree) * frsize;
        unsigned long long avail = (unsigned long long)st.f_bavail * frsize;
        double pct = used + avail ? 100.0 * (double)used / (double)(used + avail) : 0.0;
        double ipct =
            st.f_files ? 100.0 * (double)(st.f_files - st.f_ffree) / (double)st.f_files : 0.0;
        char tag[NERVE_TAG_MAX + 2];
        if (snprintf(tag, sizeof tag, "%s/%s", call->tag, m->tag_suffix) > NERVE_TAG_MAX) {
            if (!failed++)
                snprintf(first_error, sizeof first_error, "%.200s: tag %.100s/%.100s is too long",
                         m->path, call->tag, m->tag_suffix);
            continue;
        }
        char buf[PATH_MAX + 256];
        nerve_data_t d;
        nerve_data_init(&d, buf, sizeof buf);
        nerve_data_num(&d, "value", pct);
        nerve_data_str(&d, "mount", m->path);
        nerve_data_int(&d, "total_bytes", (int64_t)total);
        nerve_data_int(&d, "used_bytes", (int64_t)used);
        nerve_data_int(&d, "available_bytes", (int64_t)avail);
        nerve_data_num(&d, "inodes_percent", ipct);
        int rc = probe_emit(call, tag, &d);
        if (rc != 0 && rc != NERVE_EFULL && !failed++) /* a full queue is counted there */
            snprintf(first_error, sizeof first_error, "%.400s: %s", m->path, nerve_strerror(rc));
    }
    if (failed)
        return probe_fail(call, NERVE_EIO, "%s%s", first_error,
                          failed > 1 ? " (and other mounts)" : "");
    return 0;
}

static const nerve_module_fn_t s_functions[] = {
    {"usage",
     {.beacon = s_usage},
     "file system usage per mount (statvfs); value = percent used",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "disk", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
