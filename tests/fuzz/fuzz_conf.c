/*  fuzz_conf.c — libFuzzer target for config files: lib/conf.c and every
    daemon's config loader on top of it.

    Operators write these files by hand, so DESIGN.md promises that no
    text in one can crash, hang, leak or reach undefined behaviour, and
    that every error names what and where (file:line:column). One input is
    the text of a YAML file. For each input:

    1. nerve_conf_parse(). An error must have a code the header allows and
       a message that starts "fuzz.yaml:line:column: " with line and column
       > 0. A tree is walked node by node: positions are 1-based, scalars
       are NUL-terminated at text_len, map keys are scalars that
       nerve_conf_get() finds. Every typed getter runs on every node
       (as_str, as_int with several ranges, as_double, as_bool,
       as_duration_ms, get_str, get_module_dirs, check_keys, security and
       scheduling maps, nerve_conf_fail); each either succeeds with a value
       that obeys its contract (an int within its range, a finite double,
       the same duration nerve_duration_parse_ms() gives, a string with no
       NUL cutting it short) or fails at that node's position. The getters must agree with each other and with
       nerve_conf_to_obj() of the whole tree, which is walked alongside
       (a plain scalar that as_int reads is an integer of that value, a
       quoted one a string of its bytes, …). Aliases share their anchor's
       children, so a node whose children or text were already checked is
       not walked again: the walk stays linear in the document, while
       to_obj expands aliases as its callers will.
    2. The same text, written to a scratch file (one per process, under
       /tmp, removed at exit), goes through manager_config_load,
       actor_config_load + actor_config_check, beacond_config_load and
       relay_config_load over
       their defaults. Each returns 0 with values within their documented
       ranges (and, for beacond, every key of a beacon entry either its
       own or a param of the probe), or a negative error whose message
       names the file, line and column; LSan checks that the config frees
       everything. relay_config_load (the publisher's) is run the same way.

    Any broken promise aborts. Run with scripts/fuzz.sh; seeds are in
    corpus/conf/.
*/
#define _GNU_SOURCE
#include "../../actor/config.h"
#include "../../beacons/beacond/config.h"
#include "../../manager/config.h"
#include "../../publisher/config.h"

#include <nerve/conf.h>
#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/security.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_NAME "fuzz.yaml"

static char s_dir[64];    /* scratch directory, made once */
static char s_path[96];   /* <s_dir>/conf.yaml: what the loaders read */
static size_t s_size;     /* bytes of the current input */
static msgpack_zone s_zone;

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_conf: %s\n", what);
        abort();
    }
}

static void s_cleanup(void)
{
    if (s_path[0])
        unlink(s_path);
    if (s_dir[0])
        rmdir(s_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/nerve-fuzz-conf.XXXXXX");
    s_require(mkdtemp(s_dir) != NULL, "cannot make the scratch directory");
    snprintf(s_path, sizeof s_path, "%s/conf.yaml", s_dir);
    /*  Defaults derive paths from $NERVE_HOME: keep them in the scratch
        directory, whoever runs this. */
    setenv("NERVE_HOME", s_dir, 1);
    atexit(s_cleanup);
    s_require(msgpack_zone_init(&s_zone, 64 * 1024), "zone_init failed");
    return 0;
}

//  --------------------------------------------------------------------------
//  Checked-once set: the children array or text a node shares with others.

typedef struct {
    const void *ptr;
    uint32_t gen;
} s_slot_t;

static s_slot_t *s_seen;
static size_t s_seen_cap, s_seen_n;
static uint32_t s_gen;

static void s_seen_reset(void)
{
    s_gen++;
    s_seen_n = 0;
    if (s_gen == 0) { /* wrapped: old marks could match */
        memset(s_seen, 0, s_seen_cap * sizeof *s_seen);
        s_gen = 1;
    }
}

static size_t s_seen_hash(const void *ptr)
{
    uint64_t h = (uint64_t)(uintptr_t)ptr * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20);
}

/*  True if ptr was marked before in this input; marks it. */
static bool s_seen_mark(const void *ptr)
{
    if (2 * (s_seen_n + 1) > s_seen_cap) {
        size_t cap = s_seen_cap ? s_seen_cap * 2 : 1024;
        s_slot_t *old = s_seen, *bigger = calloc(cap, sizeof *bigger);
        s_require(bigger != NULL, "out of memory");
        for (size_t i = 0; i < s_seen_cap; i++)
            if (old[i].gen == s_gen) {
                size_t j = s_seen_hash(old[i].ptr) & (cap - 1);
                while (bigger[j].gen == s_gen)
                    j = (j + 1) & (cap - 1);
                bigger[j] = old[i];
            }
        free(old);
        s_seen = bigger;
        s_seen_cap = cap;
    }
    size_t j = s_seen_hash(ptr) & (s_seen_cap - 1);
    for (; s_seen[j].gen == s_gen; j = (j + 1) & (s_seen_cap - 1))
        if (s_seen[j].ptr == ptr)
            return true;
    s_seen[j] = (s_slot_t){ptr, s_gen};
    s_seen_n++;
    return false;
}

//  --------------------------------------------------------------------------
//  Errors

/*  An error a getter reported at `node`: a code among `codes` (0-ended),
    and a message "fuzz.yaml:line:column: something". */
static void s_check_err_at(int rc, const nerve_conf_error_t *err, const nerve_conf_t *node,
                           const int *codes, const char *what)
{
    bool known = false;
    for (; *codes && !known; codes++)
        known = rc == *codes;
    if (!known) {
        fprintf(stderr, "fuzz_conf: %s: unexpected code %d (%s)\n", what, rc, err->message);
        abort();
    }
    char prefix[96];
    int n = snprintf(prefix, sizeof prefix, "%s:%zu:%zu: ", S_NAME, node->line, node->column);
    if (strncmp(err->message, prefix, (size_t)n) != 0 || err->message[n] == '\0' ||
        err->line != node->line || err->column != node->column ||
        strcmp(err->file, S_NAME) != 0) {
        fprintf(stderr, "fuzz_conf: %s: error not at %s: '%s' (%zu:%zu)\n", what, prefix,
                err->message, err->line, err->column);
        abort();
    }
}

/*  An error from somewhere inside the tree under node (get_str, security,
    check_keys name the item, not the map): a position in the file. */
static void s_check_err_in(int rc, const nerve_conf_error_t *err, const char *what)
{
    if (rc == NERVE_ENOMEM)
        return;
    char prefix[96];
    int n = snprintf(prefix, sizeof prefix, "%s:%zu:%zu: ", S_NAME, err->line, err->column);
    if (rc >= 0 || err->line == 0 || err->column == 0 ||
        strncmp(err->message, prefix, (size_t)n) != 0 || err->message[n] == '\0') {
        fprintf(stderr, "fuzz_conf: %s: bad error %d: '%s' (%zu:%zu)\n", what, rc, err->message,
                err->line, err->column);
        abort();
    }
}

//  --------------------------------------------------------------------------
//  Step 1: the tree and its getters

static bool s_text_is(const nerve_conf_t *node, const char *s)
{
    return node->text_len == strlen(s) && memcmp(node->text, s, node->text_len) == 0;
}

static bool s_same_bytes(const msgpack_object *o, const nerve_conf_t *node)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == node->text_len &&
           (node->text_len == 0 || memcmp(o->via.str.ptr, node->text, node->text_len) == 0);
}

/*  What the getters make of one scalar, and what to_obj made of it. */
static void s_scalar(const nerve_conf_t *node, const msgpack_object *obj)
{
    static const int etype[] = {NERVE_ETYPE, 0};
    static const int etype_erange[] = {NERVE_ETYPE, NERVE_ERANGE, 0};
    nerve_conf_error_t err;
    const char *s = NULL;
    bool has_nul = strlen(node->text) != node->text_len;
    int src = nerve_conf_as_str(node, &s, &err);
    if (has_nul)
        s_check_err_at(src, &err, node, etype, "as_str with a NUL");
    else
        s_require(src == 0 && s == node->text, "as_str on a scalar");

    /*  Integers, over ranges that nest: a narrower range agrees with the
        full one. */
    static const int64_t ranges[][2] = {{INT64_MIN, INT64_MAX}, {1, 1 << 24}, {0, 100},
                                        {-5, 5},                {7, 7},       {1000, 100000000}};
    int64_t full = 0;
    int full_rc = 0;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        int64_t v = INT64_C(0x5a5a5a5a);
        int rc = nerve_conf_as_int(node, ranges[r][0], ranges[r][1], &v, &err);
        if (r == 0)
            full_rc = rc, full = v;
        if (rc == 0) {
            s_require(v >= ranges[r][0] && v <= ranges[r][1], "as_int out of its range");
            s_require(full_rc == 0 && v == full, "as_int disagrees across ranges");
        } else {
            s_check_err_at(rc, &err, node, etype_erange, "as_int");
            s_require(full_rc != 0 || full < ranges[r][0] || full > ranges[r][1],
                      "as_int refuses a value within its range");
            s_require(full_rc == 0 || rc == full_rc || rc == NERVE_ERANGE,
                      "as_int's code changed with the range");
        }
    }
    bool decimal = !(node->text_len > 1 && node->text[0] == '0' &&
                     (node->text[1] == 'x' || node->text[1] == 'o'));

    double d = 0;
    int drc = nerve_conf_as_double(node, &d, &err);
    if (drc == 0)
        s_require(isfinite(d), "as_double gave a non-finite number");
    else
        s_check_err_at(drc, &err, node, etype_erange, "as_double");
    if (full_rc == 0 && decimal)
        s_require(drc == 0 && d == (double)full, "as_double disagrees with as_int");

    bool b = false;
    int brc = nerve_conf_as_bool(node, &b, &err);
    bool spelled_true = s_text_is(node, "true") || s_text_is(node, "True") ||
                        s_text_is(node, "TRUE");
    bool spelled_false = s_text_is(node, "false") || s_text_is(node, "False") ||
                         s_text_is(node, "FALSE");
    if (brc == 0)
        s_require(b ? spelled_true : spelled_false, "as_bool accepts another spelling");
    else {
        s_check_err_at(brc, &err, node, etype, "as_bool");
        s_require(!spelled_true && !spelled_false, "as_bool refuses true or false");
    }

    uint64_t ms = 0, ms2 = 0;
    int mrc = nerve_conf_as_duration_ms(node, &ms, &err);
    if (mrc != 0)
        s_check_err_at(mrc, &err, node, etype_erange, "as_duration_ms");
    if (!has_nul) {
        int prc = nerve_duration_parse_ms(node->text, &ms2);
        s_require((mrc == 0) == (prc == 0) && (mrc != 0 || ms == ms2),
                  "as_duration_ms disagrees with nerve_duration_parse_ms");
    }

    /*  to_obj's typing, against the getters. */
    if (!obj)
        return;
    if (node->quoted) {
        s_require(s_same_bytes(obj, node), "a quoted scalar is not its own string");
        return;
    }
    bool null = node->text_len == 0 || s_text_is(node, "~") || s_text_is(node, "null") ||
                s_text_is(node, "Null") || s_text_is(node, "NULL");
    s_require((obj->type == MSGPACK_OBJECT_NIL) == null, "to_obj: null typing");
    if (brc == 0)
        s_require(obj->type == MSGPACK_OBJECT_BOOLEAN && obj->via.boolean == b,
                  "to_obj disagrees with as_bool");
    if (full_rc == 0)
        s_require(full >= 0 ? obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                                  obj->via.u64 == (uint64_t)full
                            : obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
                                  obj->via.i64 == full,
                  "to_obj disagrees with as_int");
    if (drc == 0) {
        double got = obj->type == MSGPACK_OBJECT_FLOAT64            ? obj->via.f64
                     : obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)obj->via.u64
                     : obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (double)obj->via.i64
                                                                    : NAN;
        s_require(got == d, "to_obj disagrees with as_double");
    }
    if (obj->type == MSGPACK_OBJECT_STR)
        s_require(s_same_bytes(obj, node) && full_rc != 0 && drc != 0 && brc != 0,
                  "to_obj made a string of a number or a boolean");
}

/*  Getters that want a map, on a collection: type errors at the node;
    map readers on maps, with the publisher's and every daemon's calls. */
static void s_collection(const nerve_conf_t *node)
{
    static const int etype[] = {NERVE_ETYPE, 0};
    static const int einval[] = {NERVE_EINVAL, 0};
    nerve_conf_error_t err;
    int64_t v;
    double d;
    bool b;
    uint64_t ms;
    const char *s;
    s_check_err_at(nerve_conf_as_str(node, &s, &err), &err, node, etype, "as_str");
    s_check_err_at(nerve_conf_as_int(node, 0, 10, &v, &err), &err, node, etype, "as_int");
    s_check_err_at(nerve_conf_as_double(node, &d, &err), &err, node, etype, "as_double");
    s_check_err_at(nerve_conf_as_bool(node, &b, &err), &err, node, etype, "as_bool");
    s_check_err_at(nerve_conf_as_duration_ms(node, &ms, &err), &err, node, etype,
                   "as_duration_ms");
    if (node->type != NERVE_CONF_MAP) {
        static const char *const none[] = {NULL};
        s_check_err_at(nerve_conf_check_keys(node, none, &err), &err, node, etype,
                       "check_keys on a sequence");
        s_require(nerve_conf_get(node, "0") == NULL, "nerve_conf_get found a key in a sequence");
        return;
    }

    /*  Keys: each found by nerve_conf_get (no duplicates survive parsing).
        Quadratic, so only the first few. */
    for (size_t i = 0; i < node->count && i < 32; i++) {
        const nerve_conf_t *key = node->keys[i];
        if (strlen(key->text) == key->text_len)
            s_require(nerve_conf_get(node, key->text) == node->items[i],
                      "nerve_conf_get does not find a key");
    }

    /*  check_keys: the map's own keys are allowed; "id" alone fails at the
        first other key; nothing allowed fails at the first key. */
    const char *allowed[9];
    size_t nallowed = 0;
    bool all_plain = node->count <= 8;
    for (size_t i = 0; i < node->count && i < 8; i++) {
        allowed[nallowed++] = node->keys[i]->text;
        all_plain = all_plain && strlen(node->keys[i]->text) == node->keys[i]->text_len;
    }
    allowed[nallowed] = NULL;
    int rc = nerve_conf_check_keys(node, allowed, &err);
    if (all_plain)
        s_require(rc == 0, "check_keys refuses the map's own keys");
    static const char *const only_id[] = {"id", NULL};
    rc = nerve_conf_check_keys(node, only_id, &err);
    const nerve_conf_t *other = NULL;
    for (size_t i = 0; i < node->count && !other; i++)
        if (!s_text_is(node->keys[i], "id"))
            other = node->keys[i];
    if (other) {
        s_check_err_at(rc, &err, other, einval, "check_keys");
        s_require(strstr(err.message, "unknown key '") && strstr(err.message, "expected one of: id"),
                  "check_keys does not name the key and the list");
    } else
        s_require(rc == 0, "check_keys refuses an allowed key");
    rc = nerve_conf_check_keys(node, NULL, &err);
    if (node->count)
        s_check_err_at(rc, &err, node->keys[0], einval, "check_keys with no keys allowed");
    else
        s_require(rc == 0, "check_keys refuses an empty map");

    /*  Readers the daemons call on their root map. */
    static const char *const names[] = {"id", "modules", "security", "keys", "log_level"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *slot = NULL;
        rc = nerve_conf_get_str(node, names[i], &slot, &err);
        const nerve_conf_t *n = nerve_conf_get(node, names[i]);
        if (rc == 0)
            s_require(n ? slot && strcmp(slot, n->text) == 0 : slot == NULL,
                      "get_str copied something else");
        else
            s_check_err_in(rc, &err, "get_str");
        free(slot);
    }
    char *dirs[4] = {NULL};
    size_t ndirs = 0;
    rc = nerve_conf_get_module_dirs(node, dirs, 4, &ndirs, &err);
    s_require(ndirs <= 4, "get_module_dirs overfilled");
    if (rc == 0)
        for (size_t i = 0; i < ndirs; i++)
            s_require(dirs[i] && dirs[i][0], "get_module_dirs kept an empty directory");
    else
        s_check_err_in(rc, &err, "get_module_dirs");
    for (size_t i = 0; i < ndirs; i++)
        free(dirs[i]);

    nerve_security_t sec;
    s_require(nerve_security_init(&sec, "fuzz") != NERVE_EINVAL, "security_init");
    rc = nerve_security_parse(&sec, node, &err);
    if (rc == 0)
        s_require(strlen(sec.keys) <= NERVE_KEYS_DIR_MAX, "security keys overlong");
    else
        s_check_err_in(rc, &err, "security_parse");
    nerve_sched_t sched = NERVE_SCHED_BATCH;
    rc = nerve_daemon_sched_conf(node, &sched, &err);
    if (rc != 0)
        s_check_err_in(rc, &err, "sched_conf");
}

static void s_walk(const nerve_conf_t *node, const msgpack_object *obj, size_t depth)
{
    s_require(depth <= 512, "tree deeper than the parser allows");
    s_require(node != NULL, "a NULL node in the tree");
    s_require(node->type == NERVE_CONF_SCALAR || node->type == NERVE_CONF_MAP ||
                  node->type == NERVE_CONF_SEQ,
              "bad node type");
    s_require(node->file && strcmp(node->file, S_NAME) == 0, "node without its file");
    s_require(node->line >= 1 && node->column >= 1 && node->line <= s_size + 1 &&
                  node->column <= s_size + 1,
              "position outside the input");

    /*  nerve_conf_fail formats at any node. */
    nerve_conf_error_t err;
    static const int einval[] = {NERVE_EINVAL, 0};
    s_check_err_at(nerve_conf_fail(node, &err, "bad %s", "thing"), &err, node, einval, "fail");
    s_require(strcmp(strchr(err.message + strlen(S_NAME) + 1, ' ') + 1, "bad thing") == 0,
              "nerve_conf_fail lost the message");

    if (node->type == NERVE_CONF_SCALAR) {
        s_require(node->text && node->text[node->text_len] == '\0', "scalar text not terminated");
        s_require(node->count == 0, "a scalar with children");
        /*  An alias of a scalar shares the anchor's text: checked once. */
        if (s_seen_mark(node->text))
            return;
        s_scalar(node, obj);
        return;
    }
    s_require(node->count == 0 || node->items, "children missing");
    s_require(node->type == NERVE_CONF_SEQ || node->count == 0 || node->keys, "keys missing");
    if (obj) {
        if (node->type == NERVE_CONF_MAP)
            s_require(obj->type == MSGPACK_OBJECT_MAP && obj->via.map.size == node->count,
                      "to_obj: not a map of the same size");
        else
            s_require(obj->type == MSGPACK_OBJECT_ARRAY && obj->via.array.size == node->count,
                      "to_obj: not an array of the same size");
    }
    if (node->count && s_seen_mark(node->items))
        return;
    s_collection(node);
    for (size_t i = 0; i < node->count; i++) {
        const msgpack_object *child = NULL;
        if (node->type == NERVE_CONF_MAP) {
            const nerve_conf_t *key = node->keys[i];
            s_require(key && key->type == NERVE_CONF_SCALAR && key->text &&
                          key->text[key->text_len] == '\0',
                      "a map key is not a scalar");
            s_require(key->file == node->file && key->line >= 1 && key->column >= 1,
                      "a key without a position");
            if (obj) {
                s_require(s_same_bytes(&obj->via.map.ptr[i].key, key),
                          "to_obj: a key is not its text");
                child = &obj->via.map.ptr[i].val;
            }
        } else if (obj)
            child = &obj->via.array.ptr[i];
        s_walk(node->items[i], child, depth + 1);
    }
}

static void s_tree(const uint8_t *data, size_t size)
{
    static const int parse_codes[] = {NERVE_EPARSE, NERVE_ERANGE, NERVE_ENOMEM, 0};
    nerve_conf_t *root = (nerve_conf_t *)&root; /* must be overwritten */
    nerve_conf_error_t err;
    int rc = nerve_conf_parse(S_NAME, (const char *)data, size, &root, &err);
    if (rc != 0) {
        s_require(root == NULL, "a failed parse left a root");
        bool known = false;
        for (const int *c = parse_codes; *c; c++)
            known = known || rc == *c;
        s_require(known, "parse failed with a code the header does not list");
        if (rc != NERVE_ENOMEM) {
            char prefix[96];
            int n = snprintf(prefix, sizeof prefix, "%s:%zu:%zu: ", S_NAME, err.line, err.column);
            if (err.line == 0 || err.column == 0 || strncmp(err.message, prefix, (size_t)n) ||
                !err.message[n] || strcmp(err.file, S_NAME) != 0) {
                fprintf(stderr, "fuzz_conf: parse error without a place: '%s' (%zu:%zu)\n",
                        err.message, err.line, err.column);
                abort();
            }
        }
        return;
    }
    if (!root)
        return; /* empty: nothing configured */

    msgpack_zone_clear(&s_zone);
    msgpack_object obj;
    rc = nerve_conf_to_obj(root, &s_zone, &obj);
    s_require(rc == 0 || rc == NERVE_ENOMEM, "to_obj failed on a parsed tree");
    s_seen_reset();
    s_walk(root, rc == 0 ? &obj : NULL, 1);
    nerve_conf_destroy(&root);
    s_require(root == NULL, "destroy did not clear the root");
    msgpack_zone_clear(&s_zone);
}

//  --------------------------------------------------------------------------
//  Step 2: the daemons' loaders

/*  A loader's error names the file it read, with a place in it. */
static void s_check_load_err(int rc, const nerve_conf_error_t *err, const char *who)
{
    if (rc == NERVE_ENOMEM)
        return;
    char prefix[160];
    int n = snprintf(prefix, sizeof prefix, "%s:%zu:%zu: ", s_path, err->line, err->column);
    if (rc >= 0 || err->line == 0 || err->column == 0 ||
        strncmp(err->message, prefix, (size_t)n) != 0 || err->message[n] == '\0') {
        fprintf(stderr, "fuzz_conf: %s: error %d without a place in the file: '%s' (%zu:%zu)\n",
                who, rc, err->message, err->line, err->column);
        abort();
    }
}

static void s_manager(void)
{
    manager_config_t cfg;
    nerve_conf_error_t err;
    s_require(manager_config_defaults(&cfg) == 0, "manager defaults");
    int rc = manager_config_load(&cfg, s_path, &err);
    if (rc == 0) {
        s_require(cfg.worker_queue >= 1 && cfg.worker_queue <= 1 << 24, "manager worker_queue");
        s_require(cfg.map_size_mb >= 1 && cfg.map_size_mb <= 1 << 20, "manager map_size_mb");
        s_require(cfg.heartbeat_s >= 1, "manager heartbeat");
        s_require(cfg.nmodules <= MANAGER_MAX_MODULE_DIRS, "manager modules");
        s_require(cfg.id && cfg.events && cfg.publisher && cfg.control && cfg.tap && cfg.rules &&
                      cfg.data && cfg.publisher_key,
                  "manager lost a string");
        s_require(cfg.config_path && strcmp(cfg.config_path, s_path) == 0,
                  "manager config_path");
    } else
        s_check_load_err(rc, &err, "manager_config_load");
    manager_config_free(&cfg);
}

static void s_actor(void)
{
    actor_config_t cfg;
    nerve_conf_error_t err;
    s_require(actor_config_defaults(&cfg) == 0, "actor defaults");
    int rc = actor_config_load(&cfg, s_path, &err);
    if (rc == 0) {
        s_require(cfg.workers >= 1 && cfg.workers <= ACTOR_WORKERS_MAX, "actor workers");
        s_require(cfg.queue >= 1 && cfg.queue <= ACTOR_QUEUE_MAX, "actor queue");
        s_require(cfg.heartbeat_ms >= 100 && cfg.heartbeat_ms <= 3600 * 1000, "actor heartbeat");
        s_require(cfg.timeout_ms >= 10 && cfg.timeout_ms <= 24 * 3600 * 1000, "actor timeout");
        s_require(cfg.ngroups <= ACTOR_MAX_GROUPS && cfg.nmodules <= ACTOR_MAX_MODULE_DIRS,
                  "actor groups or modules");
        for (size_t i = 0; i < cfg.ngroups; i++)
            s_require(actor_name_ok(cfg.groups[i], ACTOR_GROUP_MAX), "actor kept a bad group");
        s_require(cfg.systemctl && cfg.systemctl[0] == '/', "actor systemctl");
        char why[512] = "";
        rc = actor_config_check(&cfg, why, sizeof why);
        s_require(rc == 0 || (rc == NERVE_EINVAL && why[0]), "actor_config_check without a why");
        if (rc == 0)
            s_require(actor_name_ok(cfg.id, ACTOR_ID_MAX) && cfg.security.name[0],
                      "actor_config_check passed a bad id");
    } else
        s_check_load_err(rc, &err, "actor_config_load");
    actor_config_free(&cfg);
}

/*  Every key of a beacon entry is either one of beacond's own or a param
    of the probe, counted by length as nerve_conf_get finds keys. */
static void s_beacond_params(const uint8_t *data, size_t size, const beacond_config_t *cfg)
{
    static const char *const own[] = {"fn", "interval", "tag", "onchange", "delta", "refresh"};
    nerve_conf_t *root = NULL;
    nerve_conf_error_t err;
    s_require(nerve_conf_parse(S_NAME, (const char *)data, size, &root, &err) == 0,
              "beacond loaded what does not parse");
    const nerve_conf_t *list = nerve_conf_get(root, "beacons");
    s_require(cfg->nbeacons == (list ? list->count : 0), "beacond lost a beacon");
    for (size_t i = 0; i < cfg->nbeacons; i++) {
        const nerve_conf_t *entry = list->items[i];
        size_t mine = 0;
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            mine += nerve_conf_get(entry, own[k]) != NULL;
        s_require(mine + cfg->beacons[i].params.via.map.size == entry->count,
                  "beacond: a key is neither its own nor a param");
    }
    nerve_conf_destroy(&root);
}

static void s_beacond(const uint8_t *data, size_t size)
{
    beacond_config_t cfg;
    nerve_conf_error_t err;
    s_require(beacond_config_defaults(&cfg) == 0, "beacond defaults");
    int rc = beacond_config_load(&cfg, s_path, &err);
    if (rc == 0) {
        s_require(cfg.interval_ms >= BEACOND_INTERVAL_MIN_MS &&
                      cfg.interval_ms <= BEACOND_INTERVAL_MAX_MS,
                  "beacond interval");
        s_require(cfg.hwm >= 1 && cfg.hwm <= 100000000, "beacond hwm");
        s_require(beacond_host_ok(cfg.host), "beacond host");
        s_require(cfg.nbeacons <= BEACOND_MAX_BEACONS && (cfg.nbeacons == 0 || cfg.beacons),
                  "beacond beacons");
        for (size_t i = 0; i < cfg.nbeacons; i++) {
            const beacond_beacon_conf_t *b = &cfg.beacons[i];
            s_require(b->fn && strncmp(b->fn, "beacons.", 8) == 0, "beacond fn");
            s_require(b->interval_ms == 0 || (b->interval_ms >= BEACOND_INTERVAL_MIN_MS &&
                                              b->interval_ms <= BEACOND_INTERVAL_MAX_MS),
                      "beacond beacon interval");
            s_require(b->delta >= 0 && (b->refresh_ms == 0 || b->onchange),
                      "beacond delta or refresh");
            s_require(b->params.type == MSGPACK_OBJECT_MAP &&
                          (b->params.via.map.size == 0 || b->params.via.map.ptr),
                      "beacond params");
            s_require(strncmp(b->where, s_path, strlen(s_path)) == 0, "beacond where");
        }
        s_beacond_params(data, size, &cfg);
    } else
        s_check_load_err(rc, &err, "beacond_config_load");
    beacond_config_free(&cfg);
}

static void s_publisher(void)
{
    relay_config_t cfg;
    nerve_conf_error_t err;
    s_require(relay_config_defaults(&cfg) == 0, "publisher defaults");
    int rc = relay_config_load(&cfg, s_path, &err);
    if (rc == 0) {
        s_require(cfg.hwm >= 1000 && cfg.hwm <= 100000000, "publisher hwm");
        s_require(cfg.input && cfg.output && cfg.control, "publisher lost a string");
        s_require(cfg.scheduling == NERVE_SCHED_BATCH || cfg.scheduling == NERVE_SCHED_NORMAL,
                  "publisher scheduling");
    } else
        s_check_load_err(rc, &err, "relay_config_load");
    relay_config_free(&cfg);
}

static void s_loaders(const uint8_t *data, size_t size)
{
    FILE *f = fopen(s_path, "wb");
    s_require(f != NULL, "cannot write the scratch file");
    s_require(fwrite(data, 1, size, f) == size && fclose(f) == 0,
              "cannot write the scratch file");
    s_manager();
    s_actor();
    s_beacond(data, size);
    s_publisher();
    nerve_log_set_level(NERVE_LOG_ERROR); /* a log_level: key changed it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_size = size;
    s_tree(data, size);
    s_loaders(data, size);
    return 0;
}
