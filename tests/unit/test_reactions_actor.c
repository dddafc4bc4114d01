/*  test_reactions_actor.c — the actor-side reactions (cmd, service, file)
    through the real module loader.

    The daemon's half of the ABI is faked here, legitimately: allowed()
    answers from lists the test sets, and records what it was asked.
    Programs are real: /bin/echo, /usr/bin/env and small scripts written
    into a scratch directory, which also holds the files file.write
    writes and a fake systemctl that records its argv.
*/
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/conf.h>
#include <nerve/module.h>

#define OUTPUT_CAP NERVE_RESULT_OUTPUT_MAX

/*  Paths are built from a scratch root of at most 511 bytes into buffers
    of several KiB; gcc cannot see that bound through the helpers. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static nerve_modset_t *s_modules;
static char s_root[512]; /* a short scratch path keeps every buffer below roomy */

/* ------------------------------------------------------------ fake host */

typedef struct host {
    const char *commands[8];
    const char *services[8];
    const char *paths[8]; /* directory prefixes, compared as strings */
    int asked;
    char kind[32];
    char what[PATH_MAX];
} host_t;

static bool s_in(const char *const *list, const char *what)
{
    for (int i = 0; i < 8 && list[i]; i++)
        if (strcmp(list[i], what) == 0)
            return true;
    return false;
}

static int s_allowed(void *arg, const char *kind, const char *what)
{
    host_t *h = arg;
    h->asked++;
    snprintf(h->kind, sizeof h->kind, "%s", kind);
    snprintf(h->what, sizeof h->what, "%s", what);
    if (strcmp(kind, "commands") == 0)
        return s_in(h->commands, what) ? 0 : NERVE_EPERM;
    if (strcmp(kind, "services") == 0)
        return s_in(h->services, what) ? 0 : NERVE_EPERM;
    if (strcmp(kind, "paths") == 0) {
        for (int i = 0; i < 8 && h->paths[i]; i++) {
            size_t n = strlen(h->paths[i]);
            if (strncmp(what, h->paths[i], n) == 0 && what[n] == '/' && !strchr(what + n + 1, '/'))
                return 0;
        }
        return NERVE_EPERM;
    }
    return NERVE_EPERM;
}

static int s_emit(void *arg, const char *tag, const msgpack_object *data)
{
    return NERVE_ESTATE;
}

static int s_emit_raw(void *arg, const char *tag, const void *data, size_t len)
{
    return NERVE_ESTATE;
}

static int s_register_set(void *arg, const char *scope, const char *key,
                          const msgpack_object *value)
{
    return NERVE_ESTATE;
}

static const char *s_host_id(void *arg)
{
    return "web1";
}

static const nerve_host_api_t s_api = {
    sizeof(nerve_host_api_t), s_emit, s_emit_raw, s_register_set, s_allowed, s_host_id,
};

/* ------------------------------------------------------------- the calls */

typedef struct call {
    nerve_resolved_t res;
    msgpack_zone *zone;
    msgpack_object args;
    nerve_event_ref_t event;
    uint8_t reaction_id[NERVE_ID_SIZE];
    host_t host;
    nerve_reaction_call_t call;
    char *output;
    int rc;
} call_t;

static char s_buf[PATH_MAX * 2];

/*  A path in the scratch directory. */
static const char *s_at(const char *rel)
{
    snprintf(s_buf, sizeof s_buf, "%s/%s", s_root, rel);
    return s_buf;
}

static void s_write_file(const char *rel, const char *text, mode_t mode)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", s_root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/*  Prepares a call of reactions.<dotted> with args given as JSON. */
static void s_open(call_t *c, const char *dotted, const char *json)
{
    memset(c, 0, sizeof *c);
    char name[96], why[512];
    snprintf(name, sizeof name, "reactions.%s", dotted);
    if (nerve_modset_resolve(s_modules, name, &c->res, why, sizeof why) != 0)
        fail_msg("resolve %s: %s", name, why);
    c->zone = msgpack_zone_new(4096);
    assert_non_null(c->zone);
    if (nerve_obj_from_json(c->zone, json, strlen(json), &c->args, why, sizeof why) != 0)
        fail_msg("bad test JSON %s: %s", json, why);
    snprintf(c->event.tag, sizeof c->event.tag, "/app/deploy");
    snprintf(c->event.host, sizeof c->event.host, "build7");
    memset(c->event.id, 0xab, NERVE_ID_SIZE);
    memset(c->reaction_id, 0x5c, NERVE_ID_SIZE);
    c->output = malloc(OUTPUT_CAP + 1);
    assert_non_null(c->output);
    c->output[0] = '\0';
    c->call = (nerve_reaction_call_t){
        .fn = name,
        .args = &c->args,
        .event = &c->event,
        .rule = "deploy_rule",
        .reaction_id = c->reaction_id,
        .timeout_ms = 5000,
        .api = &s_api,
        .host = &c->host,
        .output = c->output,
        .output_cap = OUTPUT_CAP,
    };
}

static int s_run(call_t *c)
{
    c->call.fn = "test";
    c->rc = c->res.fn->fn.reaction(&c->call);
    assert_true(c->call.output_len < OUTPUT_CAP);
    c->output[c->call.output_len] = '\0';
    return c->rc;
}

static void s_close(call_t *c)
{
    msgpack_zone_free(c->zone);
    free(c->output);
}

static bool s_exists(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", s_root, rel);
    return access(path, F_OK) == 0;
}

static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char data[1 << 16];
    size_t n = fread(data, 1, sizeof data - 1, f);
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

/* ----------------------------------------------------------------- setup */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -1;
}

static int s_group_setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    char tmpl[] = "/tmp/nerve-reactions-XXXXXX";
    char real[PATH_MAX];
    if (!mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof s_root)
        return -1;
    memcpy(s_root, real, strlen(real) + 1);
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    s_modules = nerve_modset_new(dirs, 1);
    if (!s_modules)
        return -1;
    mkdir(s_at("allowed"), 0755);
    mkdir(s_at("outside"), 0755);
    char target[PATH_MAX * 2];
    snprintf(target, sizeof target, "%s/outside", s_root);
    if (symlink(target, s_at("allowed/escape")) != 0)
        return -1;
    return 0;
}

static int s_group_teardown(void **state)
{
    nerve_modset_destroy(&s_modules);
    nftw(s_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* --------------------------------------------------------------- cmd.run */

static void test_cmd_run_echo_captures_output_and_succeeds(void **state)
{
    call_t c;
    s_open(&c, "cmd.run", "{\"argv\": [\"/bin/echo\", \"hello\", \"world\"]}");
    c.host.commands[0] = "/bin/echo";
    assert_int_equal(s_run(&c), 0);
    assert_int_equal(c.call.rc, 0);
    assert_string_equal(c.output, "hello world\n");
    assert_int_equal(c.host.asked, 1);
    assert_string_equal(c.host.kind, "commands");
    assert_string_equal(c.host.what, "/bin/echo");
    s_close(&c);
}

static void test_cmd_run_refuses_an_unlisted_command_and_runs_nothing(void **state)
{
    s_write_file("touch.sh", "#!/bin/sh\n: > \"$1\"\n", 0755);
    char json[PATH_MAX * 4];
    snprintf(json, sizeof json, "{\"argv\": [\"%s/touch.sh\", \"%s/touched\"]}", s_root, s_root);
    call_t c;
    s_open(&c, "cmd.run", json);
    c.host.commands[0] = "/bin/echo";
    assert_int_equal(s_run(&c), NERVE_EPERM);
    assert_int_equal(c.call.rc, NERVE_EPERM);
    assert_non_null(strstr(c.output, "not allowed"));
    assert_non_null(strstr(c.output, "touch.sh"));
    assert_false(s_exists("touched"));
    /* The same script, allowed, does run: the refusal was the policy. */
    char script[PATH_MAX * 2];
    snprintf(script, sizeof script, "%s/touch.sh", s_root);
    c.host.commands[1] = script;
    assert_int_equal(s_run(&c), 0);
    assert_true(s_exists("touched"));
    s_close(&c);
}

static void test_cmd_run_needs_the_exact_absolute_path(void **state)
{
    const char *argv0[] = {"echo", "/bin/../bin/echo", "/bin//echo", "./echo", NULL};
    for (int i = 0; argv0[i]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"argv\": [\"%s\", \"x\"]}", argv0[i]);
        call_t c;
        s_open(&c, "cmd.run", json);
        c.host.commands[0] = "/bin/echo";
        assert_int_equal(s_run(&c), NERVE_EPERM);
        assert_string_equal(c.host.what, argv0[i]);
        s_close(&c);
    }
}

static void test_cmd_run_hostile_args_are_plain_arguments(void **state)
{
    char json[PATH_MAX * 4];
    snprintf(json, sizeof json,
             "{\"argv\": [\"/bin/echo\", \"; touch %s/pwned\", \"$(touch %s/pwned)\", "
             "\"`touch %s/pwned`\", \"a\\nb\", \"| cat\", \"&& rm -rf /\", \"../../etc/passwd\"]}",
             s_root, s_root, s_root);
    call_t c;
    s_open(&c, "cmd.run", json);
    c.host.commands[0] = "/bin/echo";
    assert_int_equal(s_run(&c), 0);
    char want[PATH_MAX * 4];
    snprintf(want, sizeof want,
             "; touch %s/pwned $(touch %s/pwned) `touch %s/pwned` a\nb | cat && rm -rf / "
             "../../etc/passwd\n",
             s_root, s_root, s_root);
    assert_string_equal(c.output, want);
    assert_false(s_exists("pwned"));
    s_close(&c);
}

static void test_cmd_run_refuses_malformed_argv(void **state)
{
    const char *bad[] = {"{}",
                         "{\"argv\": []}",
                         "{\"argv\": \"/bin/echo hi\"}",
                         "{\"argv\": [\"/bin/echo\", 3]}",
                         "{\"argv\": [\"/bin/echo\", null]}",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        call_t c;
        s_open(&c, "cmd.run", bad[i]);
        c.host.commands[0] = "/bin/echo";
        assert_int_equal(s_run(&c), NERVE_EINVAL);
        assert_int_equal(c.host.asked, 0);
        assert_true(c.call.output_len > 0);
        s_close(&c);
    }
}

static void test_cmd_run_refuses_nul_in_an_argument(void **state)
{
    call_t c;
    s_open(&c, "cmd.run", "{\"argv\": [\"/bin/echo\", \"a\\u0000b\"]}");
    c.host.commands[0] = "/bin/echo";
    assert_int_equal(s_run(&c), NERVE_EINVAL);
    assert_non_null(strstr(c.output, "NUL"));
    s_close(&c);
}

/*  Splits env output into lines and checks each expected one is there and
    nothing else. */
static void s_expect_env(const char *output, const char *const *want, size_t nwant)
{
    size_t lines = 0;
    for (const char *p = output; *p; p++)
        if (*p == '\n')
            lines++;
    for (size_t i = 0; i < nwant; i++) {
        char line[512];
        snprintf(line, sizeof line, "\n%s\n", want[i]);
        bool first = strncmp(output, line + 1, strlen(line + 1)) == 0;
        if (!first && !strstr(output, line))
            fail_msg("missing '%s' in:\n%s", want[i], output);
    }
    if (lines != nwant + 1) /* + PATH */
        fail_msg("expected %zu variables, got:\n%s", nwant + 1, output);
    if (strncmp(output, "PATH=", 5) != 0 && !strstr(output, "\nPATH="))
        fail_msg("no PATH in:\n%s", output);
}

static void test_cmd_run_environment_holds_only_nerve_vars_and_path(void **state)
{
    setenv("NERVE_TEST_SECRET", "must-not-leak", 1);
    call_t c;
    s_open(&c, "cmd.run", "{\"argv\": [\"/usr/bin/env\"], \"data\": {\"a\": 1, \"b\": \"x y\"}}");
    c.host.commands[0] = "/usr/bin/env";
    assert_int_equal(s_run(&c), 0);
    const char *want[] = {
        "NERVE_TAG=/app/deploy",
        "NERVE_HOST=build7",
        "NERVE_EVENT_ID=abababababababababababababababab",
        "NERVE_RULE=deploy_rule",
        "NERVE_REACTION_ID=5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c",
        "NERVE_ACTOR=web1",
        "NERVE_DATA={\"a\":1,\"b\":\"x y\"}",
    };
    s_expect_env(c.output, want, sizeof want / sizeof want[0]);
    assert_null(strstr(c.output, "must-not-leak"));
    unsetenv("NERVE_TEST_SECRET");
    s_close(&c);
}

static void test_cmd_run_without_data_passes_an_empty_object(void **state)
{
    call_t c;
    s_open(&c, "cmd.run", "{\"argv\": [\"/usr/bin/env\"]}");
    c.host.commands[0] = "/usr/bin/env";
    assert_int_equal(s_run(&c), 0);
    assert_non_null(strstr(c.output, "NERVE_DATA={}\n"));
    s_close(&c);
}

static void test_cmd_run_exit_status_is_the_rc(void **state)
{
    s_write_file("fail3.sh", "#!/bin/sh\necho failing >&2\nexit 3\n", 0755);
    char json[PATH_MAX * 2], script[PATH_MAX * 2];
    snprintf(script, sizeof script, "%s/fail3.sh", s_root);
    snprintf(json, sizeof json, "{\"argv\": [\"%s\"]}", script);
    call_t c;
    s_open(&c, "cmd.run", json);
    c.host.commands[0] = script;
    assert_int_equal(s_run(&c), NERVE_EMODULE);
    assert_int_equal(c.call.rc, 3);
    assert_string_equal(c.output, "failing\n"); /* stderr is captured too */
    s_close(&c);
}

static void test_cmd_run_missing_program_fails_to_start(void **state)
{
    call_t c;
    s_open(&c, "cmd.run", "{\"argv\": [\"/nonexistent/nerve-prog\"]}");
    c.host.commands[0] = "/nonexistent/nerve-prog";
    assert_int_equal(s_run(&c), NERVE_EIO);
    assert_non_null(strstr(c.output, "cannot run /nonexistent/nerve-prog"));
    s_close(&c);
}

/*  True if pid is gone or a zombie (killed, waiting for init to reap it). */
static bool s_dead(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static void s_timeout_case(const char *timeout_arg, uint32_t actor_limit_ms)
{
    char script[PATH_MAX * 2], pidfile[PATH_MAX * 2], json[PATH_MAX * 6], text[PATH_MAX * 4];
    snprintf(script, sizeof script, "%s/sleeper.sh", s_root);
    snprintf(pidfile, sizeof pidfile, "%s/sleeper.pid", s_root);
    unlink(pidfile);
    /* A child in the background, then the script itself sleeps. */
    snprintf(text, sizeof text,
             "#!/bin/sh\nsleep 30 &\necho $! > %s.tmp\nmv %s.tmp %s\necho started\nsleep 30\n",
             pidfile, pidfile, pidfile);
    s_write_file("sleeper.sh", text, 0755);
    snprintf(json, sizeof json, "{\"argv\": [\"%s\"]%s%s}", script, timeout_arg ? ", " : "",
             timeout_arg ? timeout_arg : "");
    call_t c;
    s_open(&c, "cmd.run", json);
    c.host.commands[0] = script;
    c.call.timeout_ms = actor_limit_ms;
    uint64_t start = nerve_clock_mono_ms();
    assert_int_equal(s_run(&c), NERVE_ETIMEDOUT);
    uint64_t took = nerve_clock_mono_ms() - start;
    assert_true(took >= 250);
    assert_true(took < 5000);
    assert_int_equal(c.call.rc, 128 + SIGKILL);
    assert_non_null(strstr(c.output, "started\n"));
    assert_non_null(strstr(c.output, "timeout"));
    /* The whole process group went, the background sleep too. */
    char *pidtext = s_slurp(pidfile, NULL);
    assert_non_null(pidtext);
    pid_t bg = (pid_t)atoi(pidtext);
    assert_true(bg > 0);
    for (int i = 0; i < 200 && !s_dead(bg); i++)
        usleep(10000);
    assert_true(s_dead(bg));
    s_close(&c);
}

static void test_cmd_run_timeout_kills_the_process_group(void **state)
{
    s_timeout_case("\"timeout\": \"300ms\"", 5000);
}

static void test_cmd_run_timeout_in_seconds_is_accepted(void **state)
{
    s_timeout_case("\"timeout\": 0.3", 5000);
}

static void test_cmd_run_timeout_is_bounded_by_the_actor_limit(void **state)
{
    s_timeout_case("\"timeout\": 30", 300);
}

static void test_cmd_run_refuses_a_bad_timeout(void **state)
{
    const char *bad[] = {"\"soon\"", "-1", "0", "[1]", NULL};
    for (int i = 0; bad[i]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"argv\": [\"/bin/echo\"], \"timeout\": %s}", bad[i]);
        call_t c;
        s_open(&c, "cmd.run", json);
        c.host.commands[0] = "/bin/echo";
        assert_int_equal(s_run(&c), NERVE_EINVAL);
        assert_non_null(strstr(c.output, "timeout"));
        s_close(&c);
    }
}

static void test_cmd_run_output_is_truncated_and_the_pipe_drained(void **state)
{
    /* 204800 bytes on stdout, then "done\n" on stderr: the program must not
       block on a full pipe, and exits 0. */
    s_write_file(
        "big.sh",
        "#!/bin/sh\ni=0\nline=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
        "while [ $i -lt 3200 ]; do echo $line; i=$((i+1)); done\necho done >&2\n",
        0755);
    char script[PATH_MAX * 2], json[PATH_MAX * 3];
    snprintf(script, sizeof script, "%s/big.sh", s_root);
    snprintf(json, sizeof json, "{\"argv\": [\"%s\"]}", script);
    call_t c;
    s_open(&c, "cmd.run", json);
    c.host.commands[0] = script;
    assert_int_equal(s_run(&c), 0);
    assert_int_equal(c.call.rc, 0);
    assert_true(c.call.output_len > OUTPUT_CAP - 200);
    assert_true(c.call.output_len < OUTPUT_CAP);
    assert_memory_equal(c.output, "aaaaaaaa", 8);
    assert_non_null(strstr(c.output, "[nerve: output truncated: 204805 bytes in all]"));
    assert_null(strstr(c.output, "done"));
    s_close(&c);
}

/* ------------------------------------------------------------ file.write */

static void s_file_json(char *json, size_t size, const char *path, const char *extra)
{
    snprintf(json, size, "{\"path\": \"%s\", \"content\": \"line one\\nline two\\n\"%s%s}", path,
             extra ? ", " : "", extra ? extra : "");
}

static size_t s_count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".nerve-write-"))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_file_write_writes_atomically_with_the_mode(void **state)
{
    char target[PATH_MAX * 2], allowed[PATH_MAX * 2], json[PATH_MAX * 4];
    snprintf(allowed, sizeof allowed, "%s/allowed", s_root);
    snprintf(target, sizeof target, "%s/conf", allowed);
    s_file_json(json, sizeof json, target, "\"mode\": \"0640\"");
    call_t c;
    s_open(&c, "file.write", json);
    c.host.paths[0] = allowed;
    assert_int_equal(s_run(&c), 0);
    assert_string_equal(c.host.kind, "paths");
    assert_string_equal(c.host.what, target);
    size_t len;
    assert_string_equal(s_slurp(target, &len), "line one\nline two\n");
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_non_null(strstr(c.output, "wrote 18 bytes"));
    ino_t first = st.st_ino;
    s_close(&c);

    /* Again, with YAML's 0644 (the integer 644): replaced by rename, so a
       new inode, and no temporary file left behind. */
    s_file_json(json, sizeof json, target, "\"mode\": 644");
    s_open(&c, "file.write", json);
    c.host.paths[0] = allowed;
    assert_int_equal(s_run(&c), 0);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_not_equal(st.st_ino, first);
    assert_int_equal(s_count_temp_files(allowed), 0);
    s_close(&c);
}

static void test_file_write_default_mode_is_0644(void **state)
{
    char target[PATH_MAX * 2], allowed[PATH_MAX * 2], json[PATH_MAX * 4];
    snprintf(allowed, sizeof allowed, "%s/allowed", s_root);
    snprintf(target, sizeof target, "%s/default-mode", allowed);
    s_file_json(json, sizeof json, target, NULL);
    call_t c;
    s_open(&c, "file.write", json);
    c.host.paths[0] = allowed;
    assert_int_equal(s_run(&c), 0);
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    s_close(&c);
}

/*  Expects file.write of `path` to be refused with `rc`, asking the policy
    or not, and nothing to appear in outside/ or allowed/. */
static void s_file_refused(const char *path, const char *extra, int rc, const char *why)
{
    char allowed[PATH_MAX * 2], json[PATH_MAX * 4];
    snprintf(allowed, sizeof allowed, "%s/allowed", s_root);
    s_file_json(json, sizeof json, path, extra);
    call_t c;
    s_open(&c, "file.write", json);
    c.host.paths[0] = allowed;
    if (s_run(&c) != rc)
        fail_msg("%s: expected %d, got %d: %s", path, rc, c.rc, c.output);
    if (!strstr(c.output, why))
        fail_msg("%s: expected '%s' in: %s", path, why, c.output);
    assert_false(s_exists("outside/victim"));
    assert_int_equal(s_count_temp_files(allowed), 0);
    s_close(&c);
}

static void test_file_write_refuses_paths_outside_the_policy(void **state)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/outside/victim", s_root);
    s_file_refused(p, NULL, NERVE_EPERM, "not allowed");
    snprintf(p, sizeof p, "%s/allowed/../outside/victim", s_root);
    s_file_refused(p, NULL, NERVE_EPERM, "'..'");
    s_file_refused("../../etc/passwd", NULL, NERVE_EPERM, "not an absolute path");
    s_file_refused("allowed/x", NULL, NERVE_EPERM, "not an absolute path");
    snprintf(p, sizeof p, "%s/allowed/./x", s_root);
    s_file_refused(p, NULL, NERVE_EPERM, "'.'");
    snprintf(p, sizeof p, "%s/allowed/", s_root);
    s_file_refused(p, NULL, NERVE_EPERM, "segment");
    snprintf(p, sizeof p, "%s/allowed/a\\nb", s_root);
    s_file_refused(p, "\"mode\": \"0600\"", NERVE_EPERM, "control character");
}

static void test_file_write_refuses_a_symlinked_directory_escape(void **state)
{
    /* allowed/escape → outside: the real directory is outside. */
    char p[PATH_MAX * 2], really[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/allowed/escape/victim", s_root);
    snprintf(really, sizeof really, "really %s/outside/victim", s_root);
    s_file_refused(p, NULL, NERVE_EPERM, really);
}

static void test_file_write_refuses_a_symlink_target(void **state)
{
    char link[PATH_MAX * 2], target[PATH_MAX * 2];
    snprintf(link, sizeof link, "%s/allowed/link", s_root);
    snprintf(target, sizeof target, "%s/outside/victim", s_root);
    assert_int_equal(symlink(target, link), 0);
    s_file_refused(link, NULL, NERVE_EPERM, "symbolic link");
    unlink(link);
}

static void test_file_write_refuses_bad_modes_and_args(void **state)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/allowed/m", s_root);
    s_file_refused(p, "\"mode\": \"4755\"", NERVE_EPERM, "setuid");
    s_file_refused(p, "\"mode\": 1777", NERVE_EPERM, "sticky");
    s_file_refused(p, "\"mode\": \"0999\"", NERVE_EINVAL, "octal");
    s_file_refused(p, "\"mode\": 649", NERVE_EINVAL, "octal");
    s_file_refused(p, "\"mode\": \"rw-r--r--\"", NERVE_EINVAL, "octal");
    s_file_refused(p, "\"mode\": -1", NERVE_EINVAL, "octal");
    assert_false(s_exists("allowed/m"));

    const char *bad[] = {"{\"content\": \"x\"}", "{\"path\": 3, \"content\": \"x\"}", NULL};
    for (int i = 0; bad[i]; i++) {
        call_t c;
        s_open(&c, "file.write", bad[i]);
        assert_int_equal(s_run(&c), NERVE_EINVAL);
        assert_non_null(strstr(c.output, "path"));
        s_close(&c);
    }
    char json[PATH_MAX * 3];
    snprintf(json, sizeof json, "{\"path\": \"%s\"}", p);
    call_t c;
    s_open(&c, "file.write", json);
    assert_int_equal(s_run(&c), NERVE_EINVAL);
    assert_non_null(strstr(c.output, "content"));
    s_close(&c);
}

static void test_file_write_refuses_a_directory_target(void **state)
{
    char p[PATH_MAX * 2], allowed[PATH_MAX * 2];
    snprintf(allowed, sizeof allowed, "%s/allowed", s_root);
    snprintf(p, sizeof p, "%s/allowed/adir", s_root);
    mkdir(p, 0755);
    s_file_refused(p, NULL, NERVE_EINVAL, "not a regular file");
    rmdir(p);
}

/* --------------------------------------------------------------- service */

static void s_fake_systemctl(int exit_code)
{
    char text[PATH_MAX * 3];
    snprintf(text, sizeof text,
             "#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s/systemctl.argv\necho \"systemctl $1 $2\"\n"
             "exit %d\n",
             s_root, exit_code);
    s_write_file("systemctl", text, 0755);
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/systemctl", s_root);
    setenv("NERVE_SYSTEMCTL", path, 1);
    snprintf(path, sizeof path, "%s/systemctl.argv", s_root);
    unlink(path);
}

static const char *s_systemctl_argv(void)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/systemctl.argv", s_root);
    const char *text = s_slurp(path, NULL);
    return text ? text : "(not run)";
}

static void test_service_runs_systemctl_verb_unit(void **state)
{
    const char *verbs[] = {"start", "stop", "restart", "reload", NULL};
    for (int i = 0; verbs[i]; i++) {
        s_fake_systemctl(0);
        char fn[32], want[64];
        snprintf(fn, sizeof fn, "service.%s", verbs[i]);
        call_t c;
        s_open(&c, fn, "{\"unit\": \"nginx.service\"}");
        c.host.services[0] = "nginx.service";
        assert_int_equal(s_run(&c), 0);
        snprintf(want, sizeof want, "%s\nnginx.service\n", verbs[i]);
        assert_string_equal(s_systemctl_argv(), want);
        snprintf(want, sizeof want, "systemctl %s nginx.service\n", verbs[i]);
        assert_string_equal(c.output, want);
        assert_string_equal(c.host.kind, "services");
        s_close(&c);
    }
}

static void test_service_refuses_an_unlisted_unit(void **state)
{
    s_fake_systemctl(0);
    call_t c;
    s_open(&c, "service.restart", "{\"unit\": \"sshd.service\"}");
    c.host.services[0] = "nginx.service";
    assert_int_equal(s_run(&c), NERVE_EPERM);
    assert_non_null(strstr(c.output, "not allowed"));
    assert_string_equal(s_systemctl_argv(), "(not run)");
    s_close(&c);
}

static void test_service_refuses_names_that_are_not_units(void **state)
{
    const char *bad[] = {"-H evil", "--now",          "a;b", "$(reboot)", "../x", "a/b",
                         "a b",     "nginx\\nreboot", "",    NULL};
    for (int i = 0; bad[i]; i++) {
        s_fake_systemctl(0);
        char json[128];
        snprintf(json, sizeof json, "{\"unit\": \"%s\"}", bad[i]);
        call_t c;
        s_open(&c, "service.start", json);
        c.host.services[0] = bad[i]; /* even if the policy said yes */
        if (s_run(&c) != NERVE_EINVAL)
            fail_msg("unit '%s' was not refused: %s", bad[i], c.output);
        assert_int_equal(c.host.asked, 0);
        assert_string_equal(s_systemctl_argv(), "(not run)");
        s_close(&c);
    }
    call_t c;
    s_open(&c, "service.start", "{}");
    assert_int_equal(s_run(&c), NERVE_EINVAL);
    assert_non_null(strstr(c.output, "unit"));
    s_close(&c);
}

static void test_service_systemctl_failure_is_the_rc(void **state)
{
    s_fake_systemctl(5);
    call_t c;
    s_open(&c, "service.reload", "{\"unit\": \"nginx.service\"}");
    c.host.services[0] = "nginx.service";
    assert_int_equal(s_run(&c), NERVE_EMODULE);
    assert_int_equal(c.call.rc, 5);
    s_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_run_echo_captures_output_and_succeeds),
        cmocka_unit_test(test_cmd_run_refuses_an_unlisted_command_and_runs_nothing),
        cmocka_unit_test(test_cmd_run_needs_the_exact_absolute_path),
        cmocka_unit_test(test_cmd_run_hostile_args_are_plain_arguments),
        cmocka_unit_test(test_cmd_run_refuses_malformed_argv),
        cmocka_unit_test(test_cmd_run_refuses_nul_in_an_argument),
        cmocka_unit_test(test_cmd_run_environment_holds_only_nerve_vars_and_path),
        cmocka_unit_test(test_cmd_run_without_data_passes_an_empty_object),
        cmocka_unit_test(test_cmd_run_exit_status_is_the_rc),
        cmocka_unit_test(test_cmd_run_missing_program_fails_to_start),
        cmocka_unit_test(test_cmd_run_timeout_kills_the_process_group),
        cmocka_unit_test(test_cmd_run_timeout_in_seconds_is_accepted),
        cmocka_unit_test(test_cmd_run_timeout_is_bounded_by_the_actor_limit),
        cmocka_unit_test(test_cmd_run_refuses_a_bad_timeout),
        cmocka_unit_test(test_cmd_run_output_is_truncated_and_the_pipe_drained),
        cmocka_unit_test(test_file_write_writes_atomically_with_the_mode),
        cmocka_unit_test(test_file_write_default_mode_is_0644),
        cmocka_unit_test(test_file_write_refuses_paths_outside_the_policy),
        cmocka_unit_test(test_file_write_refuses_a_symlinked_directory_escape),
        cmocka_unit_test(test_file_write_refuses_a_symlink_target),
        cmocka_unit_test(test_file_write_refuses_bad_modes_and_args),
        cmocka_unit_test(test_file_write_refuses_a_directory_target),
        cmocka_unit_test(test_service_runs_systemctl_verb_unit),
        cmocka_unit_test(test_service_refuses_an_unlisted_unit),
        cmocka_unit_test(test_service_refuses_names_that_are_not_units),
        cmocka_unit_test(test_service_systemctl_failure_is_the_rc),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
