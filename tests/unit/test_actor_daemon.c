/*  test_actor_daemon.c — nerve-actor's loop (actor/actor.c, pool.c) in
    process, against a fake publisher and manager.

    The test binds an XPUB where the publisher would be (so it sees the
    actor's subscriptions arrive: that is the readiness signal) and a PULL
    where the manager's events socket would be, on IPC paths in a scratch
    directory. The actor runs on a thread with the real module set and
    runs real programs (/bin/echo and small scripts). Waits are on sockets
    and files with deadlines, never bare sleeps.
*/
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <nerve/module.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include "../../actor/actor.h" /* manager/ has headers of the same names */

#pragma GCC diagnostic ignored "-Wformat-truncation" /* scratch paths are short */

typedef struct fixture {
    char dir[256];
    char pub_ep[512], events_ep[512];
    void *ctx, *xpub, *pull;
    actor_config_t cfg;
    actor_t *actor;
    pthread_t thread;
    bool running;
    int run_rc;
    nerve_wire_decoder_t *decoder;
    actor_stats_t stats;        /* after stop */
    char last_payload[1 << 17]; /* raw payload of the last event received */
    size_t last_len;
} fixture_t;

/* ---------------------------------------------------------------- helpers */

static void s_script(fixture_t *f, const char *name, const char *body)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n%s", body);
    fclose(fp);
    assert_int_equal(chmod(path, 0755), 0);
    char why[256];
    assert_int_equal(actor_allow_add(&f->cfg.allow, "commands", path, why, sizeof why), 0);
}

static void *s_run_thread(void *arg)
{
    fixture_t *f = arg;
    f->run_rc = actor_run(f->actor);
    return NULL;
}

/*  Starts the actor and waits until its three subscriptions reached the
    fake publisher. */
static void s_start(fixture_t *f)
{
    f->actor = actor_new(&f->cfg);
    assert_non_null(f->actor);
    assert_int_equal(pthread_create(&f->thread, NULL, s_run_thread, f), 0);
    f->running = true;
    const char *want[] = {"@all/", "@host/web1/", "@group/web/"};
    bool seen[3] = {false, false, false};
    int n = 0;
    while (n < 3) {
        zmq_pollitem_t item = {f->xpub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 5000) <= 0)
            fail_msg("the actor did not subscribe within 5 s (%d of 3)", n);
        char buf[512];
        int len = zmq_recv(f->xpub, buf, sizeof buf, 0);
        assert_true(len > 1);
        assert_int_equal(buf[0], 1);
        bool known = false;
        for (int i = 0; i < 3; i++)
            if ((size_t)len - 1 == strlen(want[i]) && memcmp(buf + 1, want[i], len - 1) == 0) {
                assert_false(seen[i]);
                seen[i] = known = true;
                n++;
            }
        if (!known)
            fail_msg("unexpected subscription '%.*s'", len - 1, buf + 1);
    }
}

static void s_stop(fixture_t *f)
{
    if (!f->running)
        return;
    actor_request_stop(f->actor);
    pthread_join(f->thread, NULL);
    f->running = false;
    assert_int_equal(f->run_rc, 0);
    actor_stats(f->actor, &f->stats);
    actor_destroy(&f->actor);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -1;
}

static int s_setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    fixture_t *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/nerve-actord-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    snprintf(f->pub_ep, sizeof f->pub_ep, "ipc://%s/pub.sock", f->dir);
    snprintf(f->events_ep, sizeof f->events_ep, "ipc://%s/events.sock", f->dir);
    f->ctx = zmq_ctx_new();
    f->xpub = zmq_socket(f->ctx, ZMQ_XPUB);
    f->pull = zmq_socket(f->ctx, ZMQ_PULL);
    int zero = 0;
    zmq_setsockopt(f->xpub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->pull, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->xpub, f->pub_ep) != 0 || zmq_bind(f->pull, f->events_ep) != 0)
        return -1;
    f->decoder = nerve_wire_decoder_new();
    actor_config_t *cfg = &f->cfg;
    if (actor_config_defaults(cfg) != 0)
        return -1;
    char why[256];
    nerve_conf_set_str(&cfg->id, "web1");
    actor_config_add_group(cfg, "web", why, sizeof why);
    nerve_conf_set_str(&cfg->publisher, f->pub_ep);
    nerve_conf_set_str(&cfg->manager, f->events_ep);
    for (size_t i = 0; i < cfg->nmodules; i++)
        free(cfg->modules[i]);
    cfg->modules[0] = strdup(NERVE_MODULE_BUILD_DIR);
    cfg->nmodules = 1;
    cfg->heartbeat_ms = 60000; /* one at start; tests that want more set it */
    cfg->timeout_ms = 5000;
    actor_allow_add(&cfg->allow, "commands", "/bin/echo", why, sizeof why);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    s_stop(f);
    actor_config_free(&f->cfg);
    nerve_wire_decoder_destroy(&f->decoder);
    zmq_close(f->xpub);
    zmq_close(f->pull);
    zmq_ctx_term(f->ctx);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/*  Publishes a reaction; returns its id in `id`. deadline_s may be
    negative (already past). */
static void s_send_with(fixture_t *f, const char *topic, const uint8_t *id, const char *fn,
                        const char *args_json, double deadline_s,
                        void (*edit)(msgpack_object *args))
{
    msgpack_zone *zone = msgpack_zone_new(1024);
    nerve_reaction_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.topic, sizeof r.topic, "@all/"); /* frame 1 is sent as given, below */
    memcpy(r.id, id, NERVE_ID_SIZE);
    snprintf(r.fn, sizeof r.fn, "%s", fn);
    char err[128];
    assert_int_equal(
        nerve_obj_from_json(zone, args_json, strlen(args_json), &r.args, err, sizeof err), 0);
    if (edit)
        edit(&r.args);
    snprintf(r.rule, sizeof r.rule, "test_rule");
    snprintf(r.event.tag, sizeof r.event.tag, "/test/trigger");
    snprintf(r.event.host, sizeof r.event.host, "src1");
    nerve_wire_new_id(r.event.id);
    r.ts = nerve_clock_wall_ns();
    r.deadline = (uint64_t)((double)r.ts + deadline_s * 1e9);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    assert_int_equal(nerve_wire_encode_reaction(&r, &buf), 0);
    /* The frame-1 topic is sent as given, even one the encoder refuses,
       to test the actor's own check. */
    zmq_send(f->xpub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->xpub, buf.data, buf.size, 0);
    msgpack_sbuffer_destroy(&buf);
    msgpack_zone_free(zone);
}

static void s_send(fixture_t *f, const char *topic, const uint8_t *id, const char *fn,
                   const char *args_json, double deadline_s)
{
    s_send_with(f, topic, id, fn, args_json, deadline_s, NULL);
}

static void s_new_id(uint8_t id[NERVE_ID_SIZE])
{
    nerve_wire_new_id(id);
}

/*  Receives the next event whose tag starts with `prefix` within
    timeout_ms (others are skipped). Fills ev; the raw payload stays in
    f->last_payload. False on timeout. */
static bool s_recv(fixture_t *f, const char *prefix, int timeout_ms, nerve_event_t *ev)
{
    uint64_t until = nerve_clock_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = nerve_clock_mono_ms();
        if (now >= until)
            return false;
        zmq_pollitem_t item = {f->pull, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)(until - now)) <= 0)
            return false;
        char tag[512];
        int tl = zmq_recv(f->pull, tag, sizeof tag, 0);
        int more = 0;
        size_t sz = sizeof more;
        zmq_getsockopt(f->pull, ZMQ_RCVMORE, &more, &sz);
        assert_true(more);
        int pl = zmq_recv(f->pull, f->last_payload, sizeof f->last_payload, 0);
        assert_true(tl > 0 && pl > 0 && (size_t)pl <= sizeof f->last_payload);
        f->last_len = (size_t)pl;
        nerve_frame_t frames[2] = {{tag, (size_t)tl}, {f->last_payload, (size_t)pl}};
        assert_int_equal(nerve_wire_decode_event(f->decoder, frames, 2, ev), NERVE_WIRE_OK);
        if (strncmp(ev->tag, prefix, strlen(prefix)) == 0)
            return true;
    }
}

typedef struct result {
    bool ok;
    int64_t rc;
    char output[1024];
    char fn[256];
    uint8_t reaction[NERVE_ID_SIZE];
} result_t;

static bool s_result(fixture_t *f, int timeout_ms, result_t *out)
{
    nerve_event_t ev;
    if (!s_recv(f, "/nerve/result/", timeout_ms, &ev))
        return false;
    assert_string_equal(ev.tag, "/nerve/result/web1");
    assert_string_equal(ev.host, "web1");
    memset(out, 0, sizeof *out);
    const msgpack_object *id = nerve_obj_get(&ev.data, "reaction");
    assert_non_null(id);
    assert_int_equal(id->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(id->via.bin.size, NERVE_ID_SIZE);
    memcpy(out->reaction, id->via.bin.ptr, NERVE_ID_SIZE);
    assert_true(nerve_obj_bool(nerve_obj_get(&ev.data, "ok"), &out->ok));
    double rc;
    assert_true(nerve_obj_number(nerve_obj_get(&ev.data, "rc"), &rc));
    out->rc = (int64_t)rc;
    const char *s;
    size_t n;
    assert_true(nerve_obj_str(nerve_obj_get(&ev.data, "output"), &s, &n));
    snprintf(out->output, sizeof out->output, "%.*s", (int)n, s);
    assert_true(nerve_obj_strcpy(nerve_obj_get(&ev.data, "fn"), out->fn, sizeof out->fn));
    assert_non_null(nerve_obj_get(&ev.data, "took_us"));
    return true;
}

static int s_count_lines(fixture_t *f, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    int n = 0, c;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

static void s_wait_file(fixture_t *f, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    uint64_t until = nerve_clock_mono_ms() + 5000;
    while (access(path, F_OK) != 0) {
        if (nerve_clock_mono_ms() > until)
            fail_msg("%s did not appear", path);
        usleep(5000); /* polling a file: there is no socket to wait on */
    }
}

/* ------------------------------------------------------------------ tests */

static void test_actor_announces_itself_with_a_heartbeat(void **state)
{
    fixture_t *f = *state;
    f->cfg.heartbeat_ms = 200;
    s_start(f);
    nerve_event_t ev;
    assert_true(s_recv(f, "/nerve/actor/", 2000, &ev));
    assert_string_equal(ev.tag, "/nerve/actor/web1/alive");
    assert_string_equal(ev.host, "web1");
    const msgpack_object *groups = nerve_obj_get(&ev.data, "groups");
    assert_non_null(groups);
    assert_int_equal(groups->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(groups->via.array.size, 1);
    assert_true(nerve_obj_str_eq(&groups->via.array.ptr[0], "web"));
    assert_true(nerve_obj_str_eq(nerve_obj_get(&ev.data, "version"), NERVE_VERSION));
    double up;
    assert_true(nerve_obj_number(nerve_obj_get(&ev.data, "uptime_s"), &up));
    assert_true(up < 2);
    /* And again, every heartbeat. */
    uint64_t t0 = nerve_clock_mono_ms();
    assert_true(s_recv(f, "/nerve/actor/web1/alive", 2000, &ev));
    assert_true(nerve_clock_mono_ms() - t0 < 1000);
    s_stop(f);
    assert_true(f->stats.heartbeats >= 2);
}

static void test_actor_runs_a_host_reaction_and_sends_its_result(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\", \"hi\"]}", 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, id, NERVE_ID_SIZE);
    assert_true(r.ok);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.output, "hi\n");
    assert_string_equal(r.fn, "reactions.cmd.run");
    /* group and all topics run too */
    s_new_id(id);
    s_send(f, "@group/web/", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\", \"g\"]}", 30);
    assert_true(s_result(f, 5000, &r));
    assert_string_equal(r.output, "g\n");
    s_new_id(id);
    s_send(f, "@all/", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\", \"a\"]}", 30);
    assert_true(s_result(f, 5000, &r));
    assert_string_equal(r.output, "a\n");
    s_stop(f);
    assert_int_equal(f->stats.submitted, 3);
    assert_int_equal(f->stats.results, 3);
}

static void test_actor_never_acts_on_a_topic_that_is_not_its_own(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    /* Matches the @host/web1/ subscription as a prefix, but is not it. */
    s_new_id(id);
    s_send(f, "@host/web1/x", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\", \"no\"]}", 30);
    s_new_id(id);
    s_send(f, "@group/web/extra/", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\"]}", 30);
    uint8_t good[NERVE_ID_SIZE];
    s_new_id(good);
    s_send(f, "@host/web1/", good, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\", \"yes\"]}", 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, good, NERVE_ID_SIZE);
    assert_false(s_result(f, 300, &r));
    s_stop(f);
    assert_int_equal(f->stats.not_mine, 2);
    assert_int_equal(f->stats.submitted, 1);
}

static void test_actor_drops_malformed_and_expired_reactions(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    zmq_send(f->xpub, "@host/web1/", 11, ZMQ_SNDMORE);
    zmq_send(f->xpub, "\xc1garbage", 8, 0);
    zmq_send(f->xpub, "@host/web1/", 11, ZMQ_SNDMORE);
    zmq_send(f->xpub, "\x80", 1, ZMQ_SNDMORE); /* three frames */
    zmq_send(f->xpub, "\x80", 1, 0);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\"]}", -1);
    uint8_t good[NERVE_ID_SIZE];
    s_new_id(good);
    s_send(f, "@host/web1/", good, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\"]}", 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, good, NERVE_ID_SIZE);
    assert_false(s_result(f, 300, &r));
    s_stop(f);
    assert_int_equal(f->stats.malformed, 2);
    assert_int_equal(f->stats.malformed_by[NERVE_WIRE_PAYLOAD_INVALID], 1);
    assert_int_equal(f->stats.malformed_by[NERVE_WIRE_FRAME_COUNT], 1);
    assert_int_equal(f->stats.expired, 1);
    assert_int_equal(f->stats.submitted, 1);
}

static void test_actor_repeat_of_a_finished_id_resends_the_same_result(void **state)
{
    fixture_t *f = *state;
    char body[1024];
    snprintf(body, sizeof body,
             "echo \"$NERVE_REACTION_ID $NERVE_ACTOR\" >> %s/runs.log\necho ran\n", f->dir);
    s_script(f, "count.sh", body);
    s_start(f);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"%s/count.sh\"]}", f->dir);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30);
    result_t r1, r2;
    assert_true(s_result(f, 5000, &r1));
    static char first[sizeof f->last_payload];
    size_t first_len = f->last_len;
    memcpy(first, f->last_payload, first_len);
    assert_true(r1.ok);
    assert_string_equal(r1.output, "ran\n");

    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30); /* the manager's retry */
    assert_true(s_result(f, 5000, &r2));
    assert_int_equal(f->last_len, first_len);
    assert_memory_equal(f->last_payload, first, first_len); /* the very same event */
    assert_int_equal(s_count_lines(f, "runs.log"), 1);
    s_stop(f);
    assert_int_equal(f->stats.repeats_done, 1);
    assert_int_equal(f->stats.submitted, 1);
}

static void test_actor_repeat_while_running_is_ignored(void **state)
{
    fixture_t *f = *state;
    char body[1024];
    snprintf(body, sizeof body,
             ": > %s/started\nwhile [ ! -e %s/go ]; do sleep 0.01; done\n"
             "echo \"$NERVE_REACTION_ID\" >> %s/runs.log\n",
             f->dir, f->dir, f->dir);
    s_script(f, "wait.sh", body);
    s_start(f);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"%s/wait.sh\"]}", f->dir);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30);
    s_wait_file(f, "started");
    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30); /* while it runs */
    /* A marker reaction proves the repeat was handled before we let go. */
    uint8_t marker[NERVE_ID_SIZE];
    s_new_id(marker);
    s_send(f, "@host/web1/", marker, "reactions.cmd.run", "{\"argv\": [\"/bin/echo\"]}", 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, marker, NERVE_ID_SIZE);
    char go[512];
    snprintf(go, sizeof go, "%s/go", f->dir);
    FILE *fp = fopen(go, "w");
    fclose(fp);
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, id, NERVE_ID_SIZE);
    assert_true(r.ok);
    assert_false(s_result(f, 300, &r));
    assert_int_equal(s_count_lines(f, "runs.log"), 1);
    s_stop(f);
    assert_int_equal(f->stats.repeats_pending, 1);
}

static void test_actor_refuses_an_unknown_function_with_a_result(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.nosuchmodule.run", "{}", 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, id, NERVE_ID_SIZE);
    assert_false(r.ok);
    assert_int_equal(r.rc, NERVE_ENOENT);
    assert_non_null(strstr(r.output, "nosuchmodule"));
    /* A function of another role is not a reaction. */
    s_new_id(id);
    s_send(f, "@host/web1/", id, "rules.simple.gt", "{}", 30);
    assert_true(s_result(f, 5000, &r));
    assert_false(r.ok);
    s_stop(f);
    assert_int_equal(f->stats.refused, 2);
    assert_int_equal(f->stats.submitted, 0);
}

static void test_actor_allow_refusal_gives_ok_false_and_runs_nothing(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"/bin/sh\", \"-c\", \": > %s/pwned\"]}", f->dir);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_false(r.ok);
    assert_int_equal(r.rc, NERVE_EPERM);
    assert_non_null(strstr(r.output, "not allowed"));
    char pwned[512];
    snprintf(pwned, sizeof pwned, "%s/pwned", f->dir);
    assert_int_not_equal(access(pwned, F_OK), 0);
    s_stop(f);
}

static void test_actor_full_queue_answers_queue_full(void **state)
{
    fixture_t *f = *state;
    char body[1024];
    snprintf(body, sizeof body,
             ": > %s/started\nwhile [ ! -e %s/go ]; do sleep 0.01; done\necho done\n", f->dir,
             f->dir);
    s_script(f, "wait.sh", body);
    f->cfg.workers = 1;
    f->cfg.queue = 1;
    s_start(f);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"%s/wait.sh\"]}", f->dir);
    uint8_t ids[3][NERVE_ID_SIZE];
    for (int i = 0; i < 3; i++) {
        s_new_id(ids[i]);
        s_send(f, "@host/web1/", ids[i], "reactions.cmd.run", args, 30);
        if (i == 0)
            s_wait_file(f, "started"); /* the only worker is busy now */
    }
    /* One runs, one waits, the third is refused at once. */
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_false(r.ok);
    assert_int_equal(r.rc, NERVE_EFULL);
    assert_non_null(strstr(r.output, "actor queue full"));
    assert_memory_equal(r.reaction, ids[2], NERVE_ID_SIZE);
    char go[512];
    snprintf(go, sizeof go, "%s/go", f->dir);
    fclose(fopen(go, "w"));
    for (int i = 0; i < 2; i++) {
        assert_true(s_result(f, 5000, &r));
        assert_true(r.ok);
        assert_memory_equal(r.reaction, ids[i], NERVE_ID_SIZE);
    }
    /* The refused one is remembered with its answer. */
    s_send(f, "@host/web1/", ids[2], "reactions.cmd.run", args, 30);
    assert_true(s_result(f, 5000, &r));
    assert_false(r.ok);
    s_stop(f);
    assert_int_equal(f->stats.refused, 1);
    assert_int_equal(f->stats.repeats_done, 1);
}

static void test_actor_stop_lets_the_running_reaction_finish(void **state)
{
    fixture_t *f = *state;
    char body[1024];
    snprintf(body, sizeof body, ": > %s/started\nsleep 0.3\necho finished\n", f->dir);
    s_script(f, "slow.sh", body);
    s_start(f);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"%s/slow.sh\"]}", f->dir);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.cmd.run", args, 30);
    s_wait_file(f, "started");
    s_stop(f); /* returns once the reaction finished and its result went out */
    result_t r;
    assert_true(s_result(f, 2000, &r));
    assert_memory_equal(r.reaction, id, NERVE_ID_SIZE);
    assert_true(r.ok);
    assert_string_equal(r.output, "finished\n");
}

static void test_actor_fire_event_sends_to_the_manager(void **state)
{
    fixture_t *f = *state;
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send(f, "@host/web1/", id, "reactions.eventer.fire_event",
           "{\"tag\": \"/app/reconfigured\", \"data\": {\"x\": 1}}", 30);
    nerve_event_t ev;
    assert_true(s_recv(f, "/app/", 5000, &ev));
    assert_string_equal(ev.tag, "/app/reconfigured");
    assert_string_equal(ev.host, "web1");
    assert_int_equal(ev.hops, 1);
    double x;
    assert_true(nerve_obj_number(nerve_obj_get(&ev.data, "x"), &x));
    assert_true(x == 1);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_true(r.ok);
    s_stop(f);
    assert_int_equal(f->stats.events, 1);
}

static void test_actor_does_not_run_a_job_whose_deadline_passed_in_the_queue(void **state)
{
    fixture_t *f = *state;
    char body[1024];
    snprintf(body, sizeof body,
             ": > %s/started\nwhile [ ! -e %s/go ]; do sleep 0.01; done\n"
             "echo \"$NERVE_REACTION_ID\" >> %s/runs.log\n",
             f->dir, f->dir, f->dir);
    s_script(f, "wait.sh", body);
    f->cfg.workers = 1;
    s_start(f);
    char args[1024];
    snprintf(args, sizeof args, "{\"argv\": [\"%s/wait.sh\"]}", f->dir);
    uint8_t first[NERVE_ID_SIZE], late[NERVE_ID_SIZE];
    s_new_id(first);
    s_send(f, "@host/web1/", first, "reactions.cmd.run", args, 30);
    s_wait_file(f, "started");
    s_new_id(late);
    uint64_t deadline_ms = nerve_clock_mono_ms() + 300;
    s_send(f, "@host/web1/", late, "reactions.cmd.run", args, 0.3);
    /* Nothing may come back while the only worker is busy; wait out the
       second one's deadline on the socket. */
    result_t r;
    uint64_t now;
    while ((now = nerve_clock_mono_ms()) <= deadline_ms + 50)
        assert_false(s_result(f, (int)(deadline_ms + 51 - now), &r));
    char go[512];
    snprintf(go, sizeof go, "%s/go", f->dir);
    fclose(fopen(go, "w"));
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, first, NERVE_ID_SIZE);
    assert_true(r.ok);
    assert_true(s_result(f, 5000, &r));
    assert_memory_equal(r.reaction, late, NERVE_ID_SIZE);
    assert_false(r.ok);
    assert_int_equal(r.rc, NERVE_ETIMEDOUT);
    assert_non_null(strstr(r.output, "deadline passed"));
    assert_int_equal(s_count_lines(f, "runs.log"), 1);
    s_stop(f);
}

/*  argv[1] becomes {{secret.NAME}} as the manager renders it: an ext value
    of type NERVE_EXT_SECRET holding the name, never the value. */
static const char *s_secret_name = "db_password";

static void s_argv1_secret(msgpack_object *args)
{
    const msgpack_object *argv = nerve_obj_get(args, "argv");
    assert_non_null(argv);
    msgpack_object *one = &argv->via.array.ptr[1];
    one->type = MSGPACK_OBJECT_EXT;
    one->via.ext.type = NERVE_EXT_SECRET;
    one->via.ext.ptr = s_secret_name;
    one->via.ext.size = (uint32_t)strlen(s_secret_name);
}

static void s_secrets_file(fixture_t *f, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/secrets.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
    nerve_conf_set_str(&f->cfg.secrets, path);
}

static void test_actor_resolves_a_secret_from_its_own_file(void **state)
{
    fixture_t *f = *state;
    s_secrets_file(f, "db_password: \"s3cret value\"\nother: x\n", 0600);
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send_with(f, "@host/web1/", id, "reactions.cmd.run",
                "{\"argv\": [\"/bin/echo\", \"placeholder\"]}", 30, s_argv1_secret);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_true(r.ok);
    assert_string_equal(r.output, "s3cret value\n"); /* the program got the value */
    s_stop(f);
}

static void test_actor_refuses_a_secret_it_does_not_hold(void **state)
{
    fixture_t *f = *state;
    s_secrets_file(f, "something_else: v\n", 0600);
    s_start(f);
    uint8_t id[NERVE_ID_SIZE];
    s_new_id(id);
    s_send_with(f, "@host/web1/", id, "reactions.cmd.run",
                "{\"argv\": [\"/bin/echo\", \"placeholder\"]}", 30, s_argv1_secret);
    result_t r;
    assert_true(s_result(f, 5000, &r));
    assert_false(r.ok);
    assert_int_equal(r.rc, NERVE_ENOENT);
    assert_non_null(strstr(r.output, "{{secret.db_password}}: no such secret"));
    s_stop(f);
    assert_int_equal(f->stats.submitted, 0); /* nothing ran */
}

static void test_actor_will_not_start_with_a_secrets_file_others_can_read(void **state)
{
    fixture_t *f = *state;
    s_secrets_file(f, "db_password: x\n", 0644);
    assert_null(actor_new(&f->cfg));
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_actor_announces_itself_with_a_heartbeat),
        T(test_actor_runs_a_host_reaction_and_sends_its_result),
        T(test_actor_never_acts_on_a_topic_that_is_not_its_own),
        T(test_actor_drops_malformed_and_expired_reactions),
        T(test_actor_repeat_of_a_finished_id_resends_the_same_result),
        T(test_actor_repeat_while_running_is_ignored),
        T(test_actor_refuses_an_unknown_function_with_a_result),
        T(test_actor_allow_refusal_gives_ok_false_and_runs_nothing),
        T(test_actor_full_queue_answers_queue_full),
        T(test_actor_stop_lets_the_running_reaction_finish),
        T(test_actor_fire_event_sends_to_the_manager),
        T(test_actor_does_not_run_a_job_whose_deadline_passed_in_the_queue),
        T(test_actor_resolves_a_secret_from_its_own_file),
        T(test_actor_refuses_a_secret_it_does_not_hold),
        T(test_actor_will_not_start_with_a_secrets_file_others_can_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
