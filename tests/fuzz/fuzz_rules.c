/*  fuzz_rules.c — libFuzzer target for rules files: the manager's loader
    (manager/rules.c) and the engine that runs what it loads.

    Rules files are what operators write most, and a reload must never
    take the manager down: whatever the bytes, ruleset_load() returns a
    ruleset or an error that says what is wrong, and leaks nothing. One
    input is the text of one rules file. It is written to a scratch file
    and loaded against the built-in modules (NERVE_MODULE_BUILD_DIR), so
    the modules' prepare() functions see every parameter the fuzzer makes
    up (periods, thresholds, patterns, regexes, percentiles…).

    What loads is then run: a few events through engine_process(), with a
    sink that renders nothing further but checks what it is handed, and
    through engine_explain(). Their tags are made from the ruleset's own
    globs (every `*` made a segment, every `**` two), so that rules match
    and evaluate; data is a map with a number, a string, a nested map and
    an array, a bare number and a string, in turn. Register state lives in
    one LMDB store for the whole run (in a scratch directory, on tmpfs when
    there is one), so a rule also meets state another input's rule of the
    same name left behind, as after a reload that changed a rule's
    parameters. The store is opened and closed around each input: its
    cache tags its pointers (regstore.c), which LeakSanitizer cannot
    follow, so cache entries alive between inputs would read as leaks.

    Checked: a failed load names a message; a loaded ruleset's blocks and
    rules are consistent (indexes in range, every rule resolved); a sink
    call has a rule, a definition, args that are a map, and a target only
    for a remote reaction. Any crash, leak, sanitizer report or timeout is
    a failure. Seeds are in corpus/rules/ (the shipped examples, the test
    fixtures, and one file per loader error).
*/
#include "engine.h"
#include "regstore.h"
#include "rules.h"

#include <nerve/conf.h>
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <dlfcn.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_TAGS_MAX 8

static char s_dir[64];   /* scratch: the rules file and the store */
static char s_path[128]; /* the rules file */
static char s_data_dir[128];
static size_t s_inputs;

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_rules: %s\n", what);
        abort();
    }
}

/*  Opens every built module once and never closes it, so that each load's
    dlopen()/dlclose() only counts references instead of mapping and
    unmapping (slow, and it loses the sanitizers' view of the code). */
static void s_pin_modules(const char *root)
{
    static const char *const roles[] = {"rules", "registers", "reactions"};
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", root, roles[r]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 4 || strcmp(e->d_name + n - 3, ".so") != 0)
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        }
        closedir(d);
    }
}

static void s_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_rules: could not remove %s\n", s_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR); /* rule errors are expected: warnings are noise */
    bool shm = access("/dev/shm", W_OK) == 0;
    snprintf(s_dir, sizeof s_dir, "%s/nerve-fuzz-rules.XXXXXX", shm ? "/dev/shm" : "/tmp");
    s_require(mkdtemp(s_dir) != NULL, "mkdtemp");
    snprintf(s_path, sizeof s_path, "%s/rules.yaml", s_dir);
    snprintf(s_data_dir, sizeof s_data_dir, "%s/data", s_dir);
    s_pin_modules(NERVE_MODULE_BUILD_DIR);
    atexit(s_cleanup);
    return 0;
}

static bool s_write(const uint8_t *data, size_t size)
{
    FILE *f = fopen(s_path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

/*  The rules a loaded set holds must point where they say. */
static void s_check_ruleset(const ruleset_t *rs)
{
    for (size_t b = 0; b < rs->nblocks; b++) {
        const block_def_t *block = &rs->blocks[b];
        s_require(block->glob && block->glob[0] == '/', "a block without a tag glob");
        for (size_t i = 0; i < block->nrules; i++)
            s_require(block->rules[i] < rs->nrules, "a block lists a rule out of range");
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        const rule_def_t *rule = &rs->rules[i];
        s_require(rule->index == i, "a rule's index is not its place");
        s_require(rule->block < rs->nblocks, "a rule's block is out of range");
        s_require(rule->name && rule->name[0], "a rule without a name");
        s_require(rule->rule.fn != NULL, "a rule function left unresolved");
        s_require(!rule->register_name || rule->reg.fn != NULL,
                  "a register function left unresolved");
        for (size_t c = 0; c < rule->nchain; c++)
            s_require(rule->chain[c].rule < rs->nrules, "a chain names a rule out of range");
        for (size_t r = 0; r < rule->nreactions; r++) {
            const reaction_def_t *def = &rule->reactions[r];
            s_require(def->local == (def->target == NULL), "a reaction both local and remote");
        }
    }
}

/*  A tag that `glob` matches: `*` in a segment → "x", `**` → "x/y". */
static size_t s_tag_for(const char *glob, char *tag, size_t size)
{
    size_t n = 0;
    for (const char *p = glob; *p && n + 4 < size; p++) {
        if (p[0] == '*' && p[1] == '*') {
            memcpy(tag + n, "x/y", 3);
            n += 3;
            p++;
        } else if (*p == '*') {
            tag[n++] = 'x';
        } else {
            tag[n++] = *p;
        }
    }
    tag[n] = '\0';
    return n;
}

static void s_on_reaction(void *arg, const rule_def_t *rule, const reaction_def_t *def,
                          const nerve_event_t *ev, const msgpack_object *value,
                          const msgpack_object *args, const char *target)
{
    size_t *fired = arg;
    (*fired)++;
    s_require(rule && def && ev && args, "a reaction without its rule or args");
    s_require(args->type == MSGPACK_OBJECT_MAP, "reaction args that are not a map");
    s_require(def->local == (target == NULL),
              "a target for a local reaction, or none for a remote one");
    if (target)
        s_require(strlen(target) < NERVE_TOPIC_MAX + 16, "a target longer than its buffer");
}

/*  The event data of turn `i`: a map, a number, a string, in turn. */
static void s_data(size_t i, msgpack_zone *zone, msgpack_object *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    switch (i % 3) {
    case 0:
        msgpack_pack_map(&pk, 4);
        msgpack_pack_str_with_body(&pk, "value", 5);
        msgpack_pack_double(&pk, 42.5 + (double)i);
        msgpack_pack_str_with_body(&pk, "name", 4);
        msgpack_pack_str_with_body(&pk, "web1", 4);
        msgpack_pack_str_with_body(&pk, "load", 4);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "1m", 2);
        msgpack_pack_int(&pk, 3);
        msgpack_pack_str_with_body(&pk, "5m", 2);
        msgpack_pack_double(&pk, 2.5);
        msgpack_pack_str_with_body(&pk, "list", 4);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "two", 3);
        break;
    case 1:
        msgpack_pack_int(&pk, (int)(7 * i));
        break;
    default:
        msgpack_pack_str_with_body(&pk, "down", 4);
        break;
    }
    size_t off = 0;
    msgpack_object unpacked; /* its strings point into sb: copied below */
    msgpack_unpack_return rc = msgpack_unpack(sb.data, sb.size, &off, zone, &unpacked);
    s_require(rc == MSGPACK_UNPACK_SUCCESS, "the fuzzer's own event data does not unpack");
    s_require(nerve_obj_copy(zone, &unpacked, out) == 0, "nerve_obj_copy");
    msgpack_sbuffer_destroy(&sb);
}

/*  Runs events made from the ruleset's globs through the engine and
    through explain. */
static void s_run(const ruleset_t *rs)
{
    char err[512];
    regstore_t *store = regstore_open(s_data_dir, (size_t)64 << 20, err, sizeof err);
    s_require(store != NULL, err);
    engine_t *engine = engine_new(store);
    s_require(engine != NULL, "engine_new");
    s_require(engine_set_ruleset(engine, rs) == 0, "engine_set_ruleset");
    msgpack_zone *zone = msgpack_zone_new(4096);
    s_require(zone != NULL, "msgpack_zone_new");
    size_t fired = 0;
    engine_sink_t sink = {.arg = &fired, .reaction = s_on_reaction};
    uint64_t now = 1700000000000000000ull + (uint64_t)s_inputs * 1000000000ull;
    size_t ntags = rs->nblocks < S_TAGS_MAX ? rs->nblocks : S_TAGS_MAX;
    for (size_t t = 0; t < ntags + 1; t++) {
        nerve_event_t ev;
        memset(&ev, 0, sizeof ev);
        const char *glob = t < ntags ? rs->blocks[t].glob : "/client/load/web1";
        ev.tag_len = s_tag_for(glob, ev.tag, sizeof ev.tag);
        snprintf(ev.host, sizeof ev.host, "web%zu", t % 3);
        ev.ts = now;
        ev.id[0] = (uint8_t)t;
        for (size_t turn = 0; turn < 3; turn++) {
            s_data(turn + t, zone, &ev.data);
            engine_process(engine, &ev, now + turn * 1000000000ull, &sink);
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        engine_explain(engine, &ev, now + 3000000000ull, &pk);
        msgpack_sbuffer_destroy(&sb);
    }
    engine_destroy(&engine);
    regstore_destroy(&store); /* commits what the events changed */
    msgpack_zone_free(zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024 || !s_write(data, size))
        return 0;
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    ruleset_t *rs = NULL;
    nerve_conf_error_t err;
    memset(&err, 0, sizeof err);
    int rc = ruleset_load(s_path, dirs, 1, &rs, &err);
    if (rc != 0) {
        s_require(rs == NULL, "a failed load handed out a ruleset");
        s_require(err.message[0] != '\0', "a failed load without a message");
    } else {
        s_require(rs != NULL, "a load that succeeded without a ruleset");
        s_check_ruleset(rs);
        s_run(rs);
        ruleset_unref(&rs);
    }
    s_inputs++;
    return 0;
}
