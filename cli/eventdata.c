/*  eventdata.c — an event's data from the command line (see cli.h).

    `nerve fire /app/deploy version=1.4 ok=true stats.ms=250` should send
    {"version": 1.4, "ok": true, "stats": {"ms": 250}} without the operator
    quoting JSON by hand. The words become a small tree of named nodes
    (maps and leaves, in the order given), which is packed once and
    unpacked into the zone as one msgpack value. --data JSON seeds the
    tree; key=value words may override what it set, but not each other: a
    key given twice is almost always a typo, and silently keeping one of
    the two would send an event nobody asked for.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/value.h>

#include <stdlib.h>
#include <string.h>

typedef struct node node_t;
struct node {
    char *key;
    bool is_map;
    bool from_word; /* set by a key=value word: a second one conflicts */
    msgpack_object leaf;
    node_t *kids;
    size_t nkids, cap;
};

struct cli_data {
    msgpack_zone *zone;     /* leaves */
    bool has_root_value;    /* --data gave a value that is not a map */
    msgpack_object root_value;
    node_t root;            /* the map */
    msgpack_sbuffer packed; /* cli_data_get's result lives here … */
    msgpack_zone *out_zone; /* … and here */
};

static void s_node_clear(node_t *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        s_node_clear(&n->kids[i]);
        free(n->kids[i].key);
    }
    free(n->kids);
    n->kids = NULL;
    n->nkids = n->cap = 0;
}

cli_data_t *cli_data_new(void)
{
    cli_data_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->zone = msgpack_zone_new(4096);
    self->out_zone = msgpack_zone_new(4096);
    if (!self->zone || !self->out_zone) {
        cli_data_destroy(&self);
        return NULL;
    }
    self->root.is_map = true;
    msgpack_sbuffer_init(&self->packed);
    return self;
}

void cli_data_destroy(cli_data_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_data_t *self = *self_p;
    s_node_clear(&self->root);
    if (self->zone)
        msgpack_zone_free(self->zone);
    if (self->out_zone)
        msgpack_zone_free(self->out_zone);
    msgpack_sbuffer_destroy(&self->packed);
    free(self);
    *self_p = NULL;
}

/*  The child of `map` named key[0..len), created (as a leaf) if missing.
    NULL on OOM. */
static node_t *s_child(node_t *map, const char *key, size_t len, bool *created)
{
    *created = false;
    for (size_t i = 0; i < map->nkids; i++)
        if (strlen(map->kids[i].key) == len && memcmp(map->kids[i].key, key, len) == 0)
            return &map->kids[i];
    if (map->nkids == map->cap) {
        size_t cap = map->cap ? map->cap * 2 : 4;
        node_t *kids = realloc(map->kids, cap * sizeof *kids);
        if (!kids)
            return NULL;
        map->kids = kids;
        map->cap = cap;
    }
    node_t *n = &map->kids[map->nkids];
    memset(n, 0, sizeof *n);
    if (!(n->key = strndup(key, len)))
        return NULL;
    map->nkids++;
    *created = true;
    return n;
}

static void s_make_leaf(node_t *n, const msgpack_object *v, bool from_word)
{
    s_node_clear(n);
    n->is_map = false;
    n->leaf = *v;
    n->from_word = from_word;
}

/*  Copies a value from --data into the tree under `n`: maps become map
    nodes (so words can override inside them), the rest leaves. */
static int s_seed(node_t *n, const msgpack_object *v, int depth)
{
    if (v->type != MSGPACK_OBJECT_MAP || depth > NERVE_JSON_DEPTH_MAX) {
        s_make_leaf(n, v, false);
        return 0;
    }
    if (!n->is_map)
        s_node_clear(n);
    n->is_map = true;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        const char *kp;
        size_t kl;
        char text[64];
        if (!nerve_obj_str(k, &kp, &kl)) { /* JSON keys are strings; be safe */
            kp = nerve_obj_format(k, text, sizeof text);
            kl = strlen(kp);
        }
        bool created;
        node_t *kid = s_child(n, kp, kl, &created);
        if (!kid)
            return NERVE_ENOMEM;
        int rc = s_seed(kid, &v->via.map.ptr[i].val, depth + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cli_data_set_obj(cli_data_t *self, const msgpack_object *obj)
{
    msgpack_object copy;
    int rc = nerve_obj_copy(self->zone, obj, &copy);
    if (rc != 0)
        return rc;
    s_node_clear(&self->root);
    self->root.is_map = true;
    self->has_root_value = copy.type != MSGPACK_OBJECT_MAP;
    self->root_value = copy;
    return self->has_root_value ? 0 : s_seed(&self->root, &copy, 0);
}

int cli_data_set_json(cli_data_t *self, const char *json, size_t len, char *err, size_t errsize)
{
    msgpack_object v;
    int rc = nerve_obj_from_json(self->zone, json, len, &v, err, errsize);
    if (rc != 0)
        return rc;
    return cli_data_set_obj(self, &v);
}

int cli_data_set_kv(cli_data_t *self, const char *word, char *err, size_t errsize)
{
    const char *eq = strchr(word, '=');
    if (!eq || eq == word) {
        snprintf(err, errsize, "expected key=value, got '%s'", word);
        return NERVE_EINVAL;
    }
    if (self->has_root_value) {
        snprintf(err, errsize, "--data is not a JSON object, so '%s' has nothing to go into",
                 word);
        return NERVE_EINVAL;
    }
    size_t keylen = (size_t)(eq - word);
    const char *value = eq + 1;
    size_t depth = 1;
    for (const char *p = word; p < eq; p++)
        depth += *p == '.';
    if (depth > NERVE_JSON_DEPTH_MAX) {
        snprintf(err, errsize, "'%.*s…' nests deeper than %d keys", 40, word,
                 NERVE_JSON_DEPTH_MAX);
        return NERVE_EINVAL;
    }
    msgpack_object v;
    if (nerve_obj_from_json(self->zone, value, strlen(value), &v, NULL, 0) != 0) {
        v = nerve_obj_str_new(self->zone, value, strlen(value));
        if (v.type == MSGPACK_OBJECT_NIL) {
            snprintf(err, errsize, "out of memory");
            return NERVE_ENOMEM;
        }
    }

    node_t *map = &self->root;
    const char *seg = word;
    for (;;) {
        const char *dot = memchr(seg, '.', (size_t)(eq - seg));
        const char *end = dot ? dot : eq;
        if (end == seg) {
            snprintf(err, errsize, "'%.*s' has an empty key segment", (int)keylen, word);
            return NERVE_EINVAL;
        }
        bool created;
        node_t *n = s_child(map, seg, (size_t)(end - seg), &created);
        if (!n) {
            snprintf(err, errsize, "out of memory");
            return NERVE_ENOMEM;
        }
        if (!dot) {
            if (!created && n->from_word) {
                snprintf(err, errsize, "'%.*s' is given twice", (int)keylen, word);
                return NERVE_EINVAL;
            }
            s_make_leaf(n, &v, true);
            return 0;
        }
        if (!created && !n->is_map && n->from_word) {
            snprintf(err, errsize, "'%.*s' is set to a value, so '%.*s' cannot go inside it",
                     (int)(end - word), word, (int)keylen, word);
            return NERVE_EINVAL;
        }
        if (!n->is_map) {
            s_node_clear(n);
            n->is_map = true;
        }
        n->from_word = true;
        map = n;
        seg = dot + 1;
    }
}

static void s_pack(msgpack_packer *pk, const node_t *n)
{
    if (!n->is_map) {
        msgpack_pack_object(pk, n->leaf);
        return;
    }
    msgpack_pack_map(pk, n->nkids);
    for (size_t i = 0; i < n->nkids; i++) {
        size_t kl = strlen(n->kids[i].key);
        msgpack_pack_str(pk, kl);
        msgpack_pack_str_body(pk, n->kids[i].key, kl);
        s_pack(pk, &n->kids[i]);
    }
}

/*  Containers nested in a value: 0 for a scalar. Bounded by the JSON and
    key depth limits, so the recursion is too. */
static size_t s_obj_depth(const msgpack_object *o)
{
    size_t deepest = 0;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            size_t d = s_obj_depth(&o->via.array.ptr[i]);
            deepest = d > deepest ? d : deepest;
        }
    else if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            size_t d = s_obj_depth(&o->via.map.ptr[i].val);
            deepest = d > deepest ? d : deepest;
        }
    else
        return 0;
    return deepest + 1;
}

static size_t s_node_depth(const node_t *n)
{
    if (!n->is_map)
        return s_obj_depth(&n->leaf);
    size_t deepest = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        size_t d = s_node_depth(&n->kids[i]);
        deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
}

int cli_data_get(cli_data_t *self, msgpack_object *out)
{
    /* An event's payload map is one level; msgpack-c parses 32. */
    size_t depth = self->has_root_value ? s_obj_depth(&self->root_value)
                                        : s_node_depth(&self->root);
    if (depth > CLI_DATA_DEPTH_MAX)
        return NERVE_ERANGE;
    if (self->has_root_value) {
        *out = self->root_value;
        return 0;
    }
    msgpack_sbuffer_clear(&self->packed);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->packed, msgpack_sbuffer_write);
    s_pack(&pk, &self->root);
    msgpack_zone_clear(self->out_zone);
    size_t off = 0;
    int rc = msgpack_unpack(self->packed.data, self->packed.size, &off, self->out_zone, out);
    return rc == MSGPACK_UNPACK_SUCCESS ? 0 : NERVE_ENOMEM;
}

int cli_data_error(const char *cmd, int err)
{
    if (err == NERVE_ERANGE)
        return cli_usage_error(cmd, "the data nests deeper than an event can carry (31 levels)");
    fprintf(stderr, "%s: out of memory\n", cmd);
    return CLI_FAIL;
}
