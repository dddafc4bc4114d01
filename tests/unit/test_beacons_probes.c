/*  test_beacons_probes.c — the built-in beacon modules, through the loader.

    Each probe is resolved from the built modules (NERVE_MODULE_BUILD_DIR)
    exactly as nerve-beacond does, prepared with params written as JSON,
    and called with a host API that records what it emits (tag and data,
    unpacked). The system they look at is a fixture: fake /proc trees in
    tests/fixtures/proc, temp directories and files made per test under
    /tmp (written, renamed, rotated and truncated mid-test), and sockets
    on ports the kernel picks (one listening, one closed).
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/module.h>
#include <nerve/value.h>

#define FIXTURES     NERVE_SOURCE_DIR "/tests/fixtures/proc"
#define S_MAX_EVENTS 64

typedef struct event {
    char tag[NERVE_TAG_MAX + 1];
    msgpack_object data;
} event_t;

/*  One prepared probe and what its runs emitted. */
typedef struct probe {
    nerve_modset_t *mods;
    nerve_resolved_t res;
    msgpack_zone *zone; /* params and captured events */
    msgpack_zone *scratch;
    msgpack_object params;
    void *prepared;
    char tag[NERVE_TAG_MAX + 1];
    event_t events[S_MAX_EVENTS];
    size_t nevents;
    int emit_rc; /* what the fake api answers */
    char error[512];
    char prepare_err[512];
} probe_t;

typedef struct fixture {
    char dir[64];
    probe_t p;
} fixture_t;

/* ------------------------------------------------------------------------
   Helpers
   ------------------------------------------------------------------------ */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/nerve-test-probes.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static void s_close(probe_t *p)
{
    if (p->prepared && p->res.fn && p->res.fn->release)
        p->res.fn->release(p->prepared);
    p->prepared = NULL;
    nerve_modset_destroy(&p->mods);
    if (p->zone)
        msgpack_zone_free(p->zone);
    if (p->scratch)
        msgpack_zone_free(p->scratch);
    p->zone = p->scratch = NULL;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    s_close(&f->p);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int s_emit_raw(void *host, const char *tag, const void *data, size_t len)
{
    probe_t *p = host;
    if (p->emit_rc)
        return p->emit_rc;
    assert_true(p->nevents < S_MAX_EVENTS);
    event_t *ev = &p->events[p->nevents++];
    assert_true(strlen(tag) <= NERVE_TAG_MAX);
    assert_int_equal(nerve_wire_check_tag(tag, strlen(tag)), NERVE_WIRE_OK);
    strcpy(ev->tag, tag);
    /* msgpack_unpack leaves strings pointing into its input: keep a copy */
    void *copy = msgpack_zone_malloc(p->zone, len);
    assert_non_null(copy);
    memcpy(copy, data, len);
    size_t off = 0;
    assert_int_equal(msgpack_unpack(copy, len, &off, p->zone, &ev->data), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    return 0;
}

static int s_emit(void *host, const char *tag, const msgpack_object *data)
{
    fail_msg("the built-in probes emit packed data (emit_raw)");
    return NERVE_EINVAL;
}

static const char *s_host_id(void *host)
{
    return "testhost";
}

static const nerve_host_api_t s_api = {
    .size = sizeof(nerve_host_api_t),
    .emit = s_emit,
    .emit_raw = s_emit_raw,
    .host_id = s_host_id,
};

/*  Resolves fn and runs its prepare() with params given as JSON. Returns
    prepare's result (the reason in p->prepare_err). */
static int s_open(probe_t *p, const char *fn, const char *json)
{
    s_close(p);
    memset(p, 0, sizeof *p);
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    p->mods = nerve_modset_new(dirs, 1);
    assert_non_null(p->mods);
    p->zone = msgpack_zone_new(8192);
    p->scratch = msgpack_zone_new(8192);
    char err[1024];
    int rc = nerve_modset_resolve_role(p->mods, NERVE_ROLE_BEACONS, fn, &p->res, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: %s", fn, err);
    assert_int_equal(nerve_obj_from_json(p->zone, json, strlen(json), &p->params, err, sizeof err),
                     0);
    snprintf(p->tag, sizeof p->tag, "/test/%s", strrchr(fn, '.') + 1);
    if (!p->res.fn->prepare)
        return 0;
    return p->res.fn->prepare(&p->params, &p->prepared, p->prepare_err, sizeof p->prepare_err);
}

static void s_open_ok(probe_t *p, const char *fn, const char *json)
{
    int rc = s_open(p, fn, json);
    if (rc != 0)
        fail_msg("prepare %s %s: %s (%s)", fn, json, p->prepare_err, nerve_strerror(rc));
}

/*  One run; events are appended to p->events (cleared first). */
static int s_run(probe_t *p)
{
    p->nevents = 0;
    p->error[0] = '\0';
    nerve_beacon_call_t call = {
        .params = &p->params,
        .prepared = p->prepared,
        .tag = p->tag,
        .api = &s_api,
        .host = p,
        .zone = p->scratch,
        .error = p->error,
        .error_cap = sizeof p->error,
    };
    int rc = p->res.fn->fn.beacon(&call);
    msgpack_zone_clear(p->scratch);
    return rc;
}

static void s_run_ok(probe_t *p)
{
    int rc = s_run(p);
    if (rc != 0)
        fail_msg("run: %s (%s)", p->error, nerve_strerror(rc));
}

static double s_num(const event_t *ev, const char *path)
{
    double v = 0;
    const msgpack_object *o = nerve_obj_path(&ev->data, path);
    if (!o || !nerve_obj_number(o, &v))
        fail_msg("%s: no number at data.%s", ev->tag, path);
    return v;
}

static bool s_str_is(const event_t *ev, const char *path, const char *want)
{
    return nerve_obj_str_eq(nerve_obj_path(&ev->data, path), want);
}

static void s_assert_str(const event_t *ev, const char *path, const char *want)
{
    const msgpack_object *o = nerve_obj_path(&ev->data, path);
    char buf[1024] = "(missing or not a string)";
    if (o)
        nerve_obj_strcpy(o, buf, sizeof buf);
    if (!s_str_is(ev, path, want))
        fail_msg("data.%s: want \"%s\", got \"%s\"", path, want, buf);
}

static void s_assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void s_write(const char *path, const char *mode, const char *text)
{
    FILE *fp = fopen(path, mode);
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void s_path(char *out, size_t size, const fixture_t *f, const char *name)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

/* ------------------------------------------------------------------------
   load.avg
   ------------------------------------------------------------------------ */

static void test_load_avg_reports_the_three_averages(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.load.avg", "{\"proc\": \"" FIXTURES "/basic\"}");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    const event_t *ev = &f->p.events[0];
    assert_string_equal(ev->tag, "/test/avg");
    assert_true(s_num(ev, "value") == 0.52);
    assert_true(s_num(ev, "load1") == 0.52);
    assert_true(s_num(ev, "load5") == 0.58);
    assert_true(s_num(ev, "load15") == 0.59);
    assert_true(s_num(ev, "running") == 2);
    assert_true(s_num(ev, "threads") == 1234);
}

static void test_load_avg_missing_file_fails_naming_it(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.load.avg", "{\"proc\": \"/nonexistent-proc\"}");
    assert_int_equal(s_run(&f->p), NERVE_EIO);
    assert_int_equal(f->p.nevents, 0);
    s_assert_contains(f->p.error, "/nonexistent-proc/loadavg");
    s_assert_contains(f->p.error, "No such file");
}

static void test_load_avg_garbage_is_a_parse_error(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.load.avg", "{\"proc\": \"" FIXTURES "/garbage\"}");
    assert_int_equal(s_run(&f->p), NERVE_EPARSE);
    s_assert_contains(f->p.error, "not a load average");
}

static void test_load_avg_reads_the_real_proc_by_default(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.load.avg", "{}");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    assert_true(s_num(&f->p.events[0], "value") >= 0);
}

static void test_probe_prepare_refuses_unknown_keys(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.load.avg", "{\"prco\": \"/x\"}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "unknown key 'prco'");
    s_assert_contains(f->p.prepare_err, "proc");
    assert_int_equal(s_open(&f->p, "beacons.mem.usage", "{\"proc\": 3}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "'proc' must be a non-empty string");
}

/* ------------------------------------------------------------------------
   mem.usage
   ------------------------------------------------------------------------ */

static void test_mem_usage_is_total_minus_available(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.mem.usage", "{\"proc\": \"" FIXTURES "/basic\"}");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    const event_t *ev = &f->p.events[0];
    assert_true(s_num(ev, "value") == 75.0);
    assert_true(s_num(ev, "total_bytes") == 16384000.0 * 1024);
    assert_true(s_num(ev, "available_bytes") == 4096000.0 * 1024);
    assert_true(s_num(ev, "used_bytes") == 12288000.0 * 1024);
    assert_true(s_num(ev, "swap_total_bytes") == 2000000.0 * 1024);
    assert_true(s_num(ev, "swap_used_bytes") == 500000.0 * 1024);
    assert_true(s_num(ev, "swap_percent") == 25.0);
    assert_null(nerve_obj_get(&ev->data, "estimated"));
}

static void test_mem_usage_estimates_without_memavailable(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.mem.usage", "{\"proc\": \"" FIXTURES "/old-kernel\"}");
    s_run_ok(&f->p);
    const event_t *ev = &f->p.events[0];
    assert_true(fabs(s_num(ev, "value") - 70.0) < 1e-9); /* free+buffers+cached = 30% */
    bool est = false;
    assert_true(nerve_obj_bool(nerve_obj_get(&ev->data, "estimated"), &est) && est);
    assert_true(s_num(ev, "swap_percent") == 0);
}

static void test_mem_usage_without_memtotal_fails(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.mem.usage", "{\"proc\": \"" FIXTURES "/garbage\"}");
    assert_int_equal(s_run(&f->p), NERVE_EPARSE);
    s_assert_contains(f->p.error, "MemTotal");
}

/* ------------------------------------------------------------------------
   disk.usage
   ------------------------------------------------------------------------ */

static double s_df_percent(const char *path)
{
    struct statvfs st;
    assert_int_equal(statvfs(path, &st), 0);
    double used = (double)(st.f_blocks - st.f_bfree), avail = (double)st.f_bavail;
    return used + avail ? 100.0 * used / (used + avail) : 0;
}

static void test_disk_usage_sends_one_event_per_mount(void **state)
{
    fixture_t *f = *state;
    char json[512];
    snprintf(json, sizeof json, "{\"mounts\": [\"/\", \"%s\"]}", f->dir);
    s_open_ok(&f->p, "beacons.disk.usage", json);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 2);
    const event_t *root = &f->p.events[0], *tmp = &f->p.events[1];
    assert_string_equal(root->tag, "/test/usage/root");
    s_assert_str(root, "mount", "/");
    char want[256];
    snprintf(want, sizeof want, "/test/usage/%s", f->dir + 1);
    for (char *c = want + strlen("/test/usage/"); *c; c++)
        if (*c == '/')
            *c = '-';
    assert_string_equal(tmp->tag, want); /* /tmp/nerve-… → tmp-nerve-… */
    s_assert_str(tmp, "mount", f->dir);
    assert_true(fabs(s_num(root, "value") - s_df_percent("/")) < 1.0);
    assert_true(fabs(s_num(tmp, "value") - s_df_percent(f->dir)) < 1.0);
    assert_true(s_num(tmp, "total_bytes") > 0);
    assert_true(s_num(tmp, "used_bytes") + s_num(tmp, "available_bytes") <=
                s_num(tmp, "total_bytes"));
}

static void test_disk_usage_root_prefixes_every_mount(void **state)
{
    fixture_t *f = *state;
    char json[512];
    snprintf(json, sizeof json, "{\"root\": \"%s\", \"mounts\": \"/\"}", f->dir);
    s_open_ok(&f->p, "beacons.disk.usage", json);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    assert_string_equal(f->p.events[0].tag, "/test/usage/root");
    assert_true(fabs(s_num(&f->p.events[0], "value") - s_df_percent(f->dir)) < 1.0);
}

static void test_disk_usage_missing_mount_fails_after_sending_the_others(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.disk.usage", "{\"mounts\": [\"/no/such/mount\", \"/\"]}");
    assert_int_equal(s_run(&f->p), NERVE_EIO);
    assert_int_equal(f->p.nevents, 1);
    s_assert_str(&f->p.events[0], "mount", "/");
    s_assert_contains(f->p.error, "/no/such/mount");
}

static void test_disk_usage_prepare_refuses_relative_or_empty_mounts(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.disk.usage", "{\"mounts\": [\"var\"]}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "absolute");
    assert_int_equal(s_open(&f->p, "beacons.disk.usage", "{\"mounts\": []}"), NERVE_EINVAL);
}

/* ------------------------------------------------------------------------
   proc.running
   ------------------------------------------------------------------------ */

static void test_proc_running_counts_processes_by_name(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.proc.running",
              "{\"name\": \"nginx\", \"proc\": \"" FIXTURES "/basic\"}");
    s_run_ok(&f->p);
    const event_t *ev = &f->p.events[0];
    assert_true(s_num(ev, "value") == 2); /* not nginx-helper, not sys/ */
    s_assert_str(ev, "name", "nginx");
    const msgpack_object *pids = nerve_obj_get(&ev->data, "pids");
    assert_int_equal(pids->via.array.size, 2);
    uint64_t a = pids->via.array.ptr[0].via.u64, b = pids->via.array.ptr[1].via.u64;
    assert_true((a == 100 && b == 101) || (a == 101 && b == 100));
}

static void test_proc_running_compares_the_kernels_15_bytes_of_a_name(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.proc.running",
              "{\"name\": \"averyveryverylongname\", \"proc\": \"" FIXTURES "/basic\"}");
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 1);
    s_assert_str(&f->p.events[0], "name", "averyveryverylongname");
}

static void test_proc_running_reports_zero_when_down(void **state)
{
    fixture_t *f = *state;
    s_open_ok(&f->p, "beacons.proc.running",
              "{\"name\": \"redis\", \"proc\": \"" FIXTURES "/basic\"}");
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 0);
    assert_int_equal(nerve_obj_get(&f->p.events[0].data, "pids")->via.array.size, 0);
}

static void test_proc_running_by_pidfile(void **state)
{
    fixture_t *f = *state;
    char pidfile[128], json[512];
    s_path(pidfile, sizeof pidfile, f, "nginx.pid");
    snprintf(json, sizeof json, "{\"pidfile\": \"%s\", \"proc\": \"" FIXTURES "/basic\"}", pidfile);

    s_open_ok(&f->p, "beacons.proc.running", json);
    s_run_ok(&f->p); /* no pidfile yet: down, not an error */
    assert_true(s_num(&f->p.events[0], "value") == 0);
    bool missing = false;
    assert_true(nerve_obj_bool(nerve_obj_get(&f->p.events[0].data, "pidfile_missing"), &missing) &&
                missing);

    s_write(pidfile, "w", "101\n");
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 1);
    assert_true(s_num(&f->p.events[0], "pids.0") == 101);

    s_write(pidfile, "w", "4242\n"); /* stale: no such process */
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 0);

    s_write(pidfile, "w", "not a pid\n");
    assert_int_equal(s_run(&f->p), NERVE_EPARSE);
    s_assert_contains(f->p.error, pidfile);
}

static void test_proc_running_pidfile_with_name_rejects_a_recycled_pid(void **state)
{
    fixture_t *f = *state;
    char pidfile[128], json[512];
    s_path(pidfile, sizeof pidfile, f, "pg.pid");
    s_write(pidfile, "w", "101\n"); /* 101 is nginx */
    snprintf(json, sizeof json,
             "{\"pidfile\": \"%s\", \"name\": \"postgres\", \"proc\": \"" FIXTURES "/basic\"}",
             pidfile);
    s_open_ok(&f->p, "beacons.proc.running", json);
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 0);
    s_write(pidfile, "w", "102\n");
    s_run_ok(&f->p);
    assert_true(s_num(&f->p.events[0], "value") == 1);
}

static void test_proc_running_needs_a_name_or_pidfile(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.proc.running", "{}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "'name'");
    s_open_ok(&f->p, "beacons.proc.running", "{\"name\": \"x\", \"proc\": \"/nonexistent\"}");
    assert_int_equal(s_run(&f->p), NERVE_EIO);
    s_assert_contains(f->p.error, "/nonexistent");
}

/* ------------------------------------------------------------------------
   net.tcp_check
   ------------------------------------------------------------------------ */

/*  A TCP socket on 127.0.0.1 and a port the kernel picked; listening or
    merely bound (nothing accepts: connections are refused). */
static int s_socket(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (listening)
        assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_tcp_check_reports_a_listening_port_as_up(void **state)
{
    fixture_t *f = *state;
    int port, fd = s_socket(true, &port);
    char json[256];
    snprintf(json, sizeof json, "{\"host\": \"127.0.0.1\", \"port\": %d, \"timeout\": \"2s\"}",
             port);
    s_open_ok(&f->p, "beacons.net.tcp_check", json);
    s_run_ok(&f->p);
    const event_t *ev = &f->p.events[0];
    assert_true(s_num(ev, "value") == 1);
    bool ok = false;
    assert_true(nerve_obj_bool(nerve_obj_get(&ev->data, "ok"), &ok) && ok);
    assert_true(s_num(ev, "latency_ms") >= 0);
    assert_true(s_num(ev, "port") == port);
    s_assert_str(ev, "host", "127.0.0.1");
    assert_null(nerve_obj_get(&ev->data, "error"));
    close(fd);
}

static void test_tcp_check_reports_a_closed_port_as_down_not_as_failure(void **state)
{
    fixture_t *f = *state;
    int port, fd = s_socket(false, &port);
    char json[256];
    snprintf(json, sizeof json, "{\"host\": \"127.0.0.1\", \"port\": %d, \"timeout\": 2}", port);
    s_open_ok(&f->p, "beacons.net.tcp_check", json);
    s_run_ok(&f->p);
    const event_t *ev = &f->p.events[0];
    assert_true(s_num(ev, "value") == 0);
    bool ok = true;
    assert_true(nerve_obj_bool(nerve_obj_get(&ev->data, "ok"), &ok) && !ok);
    s_assert_str(ev, "error", "Connection refused");
    assert_null(nerve_obj_get(&ev->data, "latency_ms"));
    close(fd);
}

static void test_tcp_check_prepare_needs_host_and_a_valid_port(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.net.tcp_check", "{\"host\": \"db\"}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "'port'");
    assert_int_equal(s_open(&f->p, "beacons.net.tcp_check", "{\"host\": \"db\", \"port\": 70000}"),
                     NERVE_EINVAL);
    assert_int_equal(
        s_open(&f->p, "beacons.net.tcp_check", "{\"host\": \"db\", \"port\": 5, \"timeout\": 0}"),
        NERVE_EINVAL);
    assert_int_equal(s_open(&f->p, "beacons.net.tcp_check",
                            "{\"host\": \"db\", \"port\": 5, \"timeout\": \"soon\"}"),
                     NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "'timeout'");
}

/* ------------------------------------------------------------------------
   file.changed
   ------------------------------------------------------------------------ */

static const event_t *s_find(const probe_t *p, const char *path, const char *kind)
{
    for (size_t i = 0; i < p->nevents; i++)
        if (s_str_is(&p->events[i], "path", path) && s_str_is(&p->events[i], "kind", kind))
            return &p->events[i];
    return NULL;
}

static void s_assert_change(const probe_t *p, const char *path, const char *kind)
{
    const event_t *ev = s_find(p, path, kind);
    if (!ev) {
        char seen[2048] = "";
        for (size_t i = 0; i < p->nevents; i++) {
            char one[300];
            nerve_obj_format(&p->events[i].data, one, sizeof one);
            strncat(seen, one, sizeof seen - strlen(seen) - 2);
            strcat(seen, " ");
        }
        fail_msg("no %s event for %s; got: %s", kind, path, seen);
    }
    assert_true(s_num(ev, "value") == 1);
    assert_string_equal(ev->tag, "/test/changed");
}

static void test_file_changed_reports_entries_of_a_watched_directory(void **state)
{
    fixture_t *f = *state;
    char json[256], path[128];
    snprintf(json, sizeof json, "{\"paths\": [\"%s/\"]}", f->dir);
    s_open_ok(&f->p, "beacons.file.changed", json);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 0); /* nothing happened yet */

    s_path(path, sizeof path, f, "a.conf");
    s_write(path, "w", "x=1\n");
    s_run_ok(&f->p);
    s_assert_change(&f->p, path, "created");
    s_assert_change(&f->p, path, "modified");
    assert_int_equal(f->p.nevents, 2);

    for (int i = 0; i < 50; i++) /* fifty writes: one event */
        s_write(path, "a", "more\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_change(&f->p, path, "modified");

    assert_int_equal(unlink(path), 0);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_change(&f->p, path, "deleted");
}

static void test_file_changed_follows_a_file_replaced_by_rename(void **state)
{
    fixture_t *f = *state;
    char json[256], path[128], tmp[128], other[128];
    s_path(path, sizeof path, f, "app.yaml");
    s_path(tmp, sizeof tmp, f, ".app.yaml.tmp");
    s_path(other, sizeof other, f, "other.txt");
    snprintf(json, sizeof json, "{\"path\": \"%s\"}", path); /* does not exist yet */
    s_open_ok(&f->p, "beacons.file.changed", json);

    s_write(path, "w", "v: 1\n");
    s_write(other, "w", "not watched\n");
    s_run_ok(&f->p);
    s_assert_change(&f->p, path, "created");
    assert_null(s_find(&f->p, other, "created"));
    for (size_t i = 0; i < f->p.nevents; i++)
        s_assert_str(&f->p.events[i], "path", path);

    s_write(tmp, "w", "v: 2\n"); /* as an editor or config management does */
    assert_int_equal(rename(tmp, path), 0);
    s_run_ok(&f->p);
    s_assert_change(&f->p, path, "created");
    assert_null(s_find(&f->p, tmp, "created"));

    s_write(path, "a", "w: 3\n"); /* still watched after the rename */
    s_run_ok(&f->p);
    s_assert_change(&f->p, path, "modified");
}

static void test_file_changed_missing_directory_fails_until_it_exists(void **state)
{
    fixture_t *f = *state;
    char json[256], dir[128], path[160];
    s_path(dir, sizeof dir, f, "later");
    snprintf(path, sizeof path, "%s/x.log", dir);
    snprintf(json, sizeof json, "{\"paths\": [\"%s\"]}", path);
    s_open_ok(&f->p, "beacons.file.changed", json);
    assert_int_equal(s_run(&f->p), NERVE_EIO);
    s_assert_contains(f->p.error, "cannot watch");
    s_assert_contains(f->p.error, dir);

    assert_int_equal(mkdir(dir, 0700), 0);
    s_run_ok(&f->p); /* the watch is added now */
    s_write(path, "w", "hello\n");
    s_run_ok(&f->p);
    s_assert_change(&f->p, path, "created");
}

static void test_file_changed_prepare_needs_paths(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.file.changed", "{}"), NERVE_EINVAL);
    assert_int_equal(s_open(&f->p, "beacons.file.changed", "{\"paths\": [\"rel\"]}"), NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "absolute");
}

/* ------------------------------------------------------------------------
   log.match
   ------------------------------------------------------------------------ */

static void s_log_open(fixture_t *f, const char *path, const char *extra)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"path\": \"%s\", \"pattern\": \"ERROR (.*) on (sd[a-z])( again)?\"%s}", path,
             extra ? extra : "");
    s_open_ok(&f->p, "beacons.log.match", json);
}

static void s_assert_line(const event_t *ev, const char *line, const char *what, const char *dev)
{
    assert_string_equal(ev->tag, "/test/match");
    assert_true(s_num(ev, "value") == 1);
    s_assert_str(ev, "line", line);
    s_assert_str(ev, "captures.0", what);
    s_assert_str(ev, "captures.1", dev);
}

static void test_log_match_starts_at_the_end_and_reports_new_matching_lines(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "ERROR old news on sda\n");
    s_log_open(f, path, NULL);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 0);

    s_write(path, "a", "info: all good\nERROR disk full on sdb\r\nERROR io on sdc again\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 2);
    s_assert_line(&f->p.events[0], "ERROR disk full on sdb", "disk full", "sdb");
    assert_int_equal(nerve_obj_path(&f->p.events[0].data, "captures.2")->type, MSGPACK_OBJECT_NIL);
    s_assert_str(&f->p.events[0], "path", path);
    s_assert_line(&f->p.events[1], "ERROR io on sdc again", "io", "sdc");
    s_assert_str(&f->p.events[1], "captures.2", " again");

    s_run_ok(&f->p); /* nothing new */
    assert_int_equal(f->p.nevents, 0);
}

static void test_log_match_waits_for_the_end_of_a_line(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "");
    s_log_open(f, path, NULL);
    s_write(path, "a", "ERROR half on sd");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 0);
    s_write(path, "a", "e\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR half on sde", "half", "sde");
}

static void test_log_match_survives_rotation(void **state)
{
    fixture_t *f = *state;
    char path[128], rotated[128];
    s_path(path, sizeof path, f, "app.log");
    s_path(rotated, sizeof rotated, f, "app.log.1");
    s_write(path, "w", "start\n");
    s_log_open(f, path, NULL);

    s_write(path, "a", "ERROR before on sda\n");
    assert_int_equal(rename(path, rotated), 0);   /* logrotate: rename… */
    s_write(rotated, "a", "ERROR late on sdb\n"); /* …the app still writes the old file… */
    s_write(path, "w", "ERROR fresh on sdc\n");   /* …and a new one appears */
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 3);
    s_assert_line(&f->p.events[0], "ERROR before on sda", "before", "sda");
    s_assert_line(&f->p.events[1], "ERROR late on sdb", "late", "sdb");
    s_assert_line(&f->p.events[2], "ERROR fresh on sdc", "fresh", "sdc");

    s_write(path, "a", "ERROR next on sdd\n"); /* following the new file now */
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR next on sdd", "next", "sdd");
}

static void test_log_match_survives_truncation(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "");
    s_log_open(f, path, NULL);
    s_write(path, "a", "ERROR a long line before the truncation on sda\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_write(path, "w", "ERROR t on sdb\n"); /* truncated and shorter: copytruncate */
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR t on sdb", "t", "sdb");
}

static void test_log_match_caps_events_per_run_and_reports_the_skipped(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "");
    s_log_open(f, path, ", \"max_events\": 3");
    for (int i = 0; i < 10; i++)
        s_write(path, "a", "ERROR storm on sda\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 3);
    assert_null(nerve_obj_get(&f->p.events[2].data, "skipped"));
    s_write(path, "a", "ERROR calm on sdb\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR calm on sdb", "calm", "sdb");
    assert_true(s_num(&f->p.events[0], "skipped") == 7);
    s_write(path, "a", "ERROR again on sdc\n");
    s_run_ok(&f->p);
    assert_null(nerve_obj_get(&f->p.events[0].data, "skipped"));
}

static void test_log_match_missing_file_fails_then_reads_it_from_the_start(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "later.log");
    s_log_open(f, path, NULL);
    assert_int_equal(s_run(&f->p), NERVE_EIO);
    s_assert_contains(f->p.error, path);
    s_assert_contains(f->p.error, "No such file");
    s_write(path, "w", "ERROR born on sda\n");
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR born on sda", "born", "sda");
}

static void test_log_match_sends_invalid_utf8_as_replacement_characters(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "");
    s_log_open(f, path, NULL);
    s_write(path, "a", "ERROR caf\xe9 on sda\n"); /* Latin-1, not UTF-8 */
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 1);
    s_assert_line(&f->p.events[0], "ERROR caf\xef\xbf\xbd on sda", "caf\xef\xbf\xbd", "sda");
}

static void test_log_match_matches_the_start_of_an_over_long_line(void **state)
{
    fixture_t *f = *state;
    char path[128];
    s_path(path, sizeof path, f, "app.log");
    s_write(path, "w", "");
    s_log_open(f, path, NULL);
    size_t n = 20000;
    char *line = malloc(n + 2);
    assert_non_null(line);
    memcpy(line, "ERROR huge on sdz ", 18);
    memset(line + 18, 'x', n - 18);
    line[n] = '\n';
    line[n + 1] = '\0';
    s_write(path, "a", line);
    s_write(path, "a", "ERROR after on sdy\n");
    free(line);
    s_run_ok(&f->p);
    assert_int_equal(f->p.nevents, 2);
    const msgpack_object *l = nerve_obj_get(&f->p.events[0].data, "line");
    assert_int_equal(l->via.str.size, 8 * 1024);
    s_assert_line(&f->p.events[1], "ERROR after on sdy", "after", "sdy");
}

static void test_log_match_prepare_refuses_a_bad_regex(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_open(&f->p, "beacons.log.match", "{\"path\": \"/x\", \"pattern\": \"(\"}"),
                     NERVE_EINVAL);
    s_assert_contains(f->p.prepare_err, "'pattern'");
    assert_int_equal(s_open(&f->p, "beacons.log.match", "{\"path\": \"/x\"}"), NERVE_EINVAL);
    assert_int_equal(
        s_open(&f->p, "beacons.log.match", "{\"path\": \"rel.log\", \"pattern\": \"x\"}"),
        NERVE_EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_load_avg_reports_the_three_averages),
        T(test_load_avg_missing_file_fails_naming_it),
        T(test_load_avg_garbage_is_a_parse_error),
        T(test_load_avg_reads_the_real_proc_by_default),
        T(test_probe_prepare_refuses_unknown_keys),
        T(test_mem_usage_is_total_minus_available),
        T(test_mem_usage_estimates_without_memavailable),
        T(test_mem_usage_without_memtotal_fails),
        T(test_disk_usage_sends_one_event_per_mount),
        T(test_disk_usage_root_prefixes_every_mount),
        T(test_disk_usage_missing_mount_fails_after_sending_the_others),
        T(test_disk_usage_prepare_refuses_relative_or_empty_mounts),
        T(test_proc_running_counts_processes_by_name),
        T(test_proc_running_compares_the_kernels_15_bytes_of_a_name),
        T(test_proc_running_reports_zero_when_down),
        T(test_proc_running_by_pidfile),
        T(test_proc_running_pidfile_with_name_rejects_a_recycled_pid),
        T(test_proc_running_needs_a_name_or_pidfile),
        T(test_tcp_check_reports_a_listening_port_as_up),
        T(test_tcp_check_reports_a_closed_port_as_down_not_as_failure),
        T(test_tcp_check_prepare_needs_host_and_a_valid_port),
        T(test_file_changed_reports_entries_of_a_watched_directory),
        T(test_file_changed_follows_a_file_replaced_by_rename),
        T(test_file_changed_missing_directory_fails_until_it_exists),
        T(test_file_changed_prepare_needs_paths),
        T(test_log_match_starts_at_the_end_and_reports_new_matching_lines),
        T(test_log_match_waits_for_the_end_of_a_line),
        T(test_log_match_survives_rotation),
        T(test_log_match_survives_truncation),
        T(test_log_match_caps_events_per_run_and_reports_the_skipped),
        T(test_log_match_missing_file_fails_then_reads_it_from_the_start),
        T(test_log_match_sends_invalid_utf8_as_replacement_characters),
        T(test_log_match_matches_the_start_of_an_over_long_line),
        T(test_log_match_prepare_refuses_a_bad_regex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
