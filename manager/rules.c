/*  rules.c — loads rules files into a compiled ruleset (see rules.h).

    The walk is: file → blocks (tag glob: {rules: [...]}) → rules (one-key
    maps, name → body) → the body's structural keys and params. Each step
    checks its shape and fails with the node's file:line:column. Chains are
    resolved per file once all its rules are known, then checked for cycles
    across the whole set. Nothing is half-loaded: on any error the partial
    ruleset is destroyed and the caller keeps the old one.
*/
#include "rules.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_DEADLINE_MS 60000
#define DEFAULT_KEY "{{event.host}}"

static const char *const s_structural[] = {"rule", "register", "reactions", "chain", "for",
                                           "cooldown", "key", "field", "scope", NULL};

/*  A chain reference waiting for its file's rules to be known. */
typedef struct pending_link {
    uint32_t rule;
    size_t slot;
    char *name;
    const nerve_conf_t *node; /* valid while the file's tree lives */
} pending_link_t;

typedef struct loader {
    ruleset_t *rs;
    nerve_conf_error_t *err;
    const char *file;         /* interned in rs->files */
    char stem[128];           /* file name without directory and .yaml */
    uint32_t first_rule;      /* this file's first rule index */
    pending_link_t *pending;
    size_t npending;
} loader_t;

const char *chain_op_name(chain_op_t op)
{
    static const char *names[] = {"AND", "OR", "AND_NOT", "OR_NOT"};
    return op <= CHAIN_OR_NOT ? names[op] : "?";
}

static int s_chain_op_parse(const char *s, chain_op_t *op)
{
    static const char *names[] = {"AND", "OR", "AND_NOT", "OR_NOT"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *op = (chain_op_t)i;
            return 0;
        }
    }
    return NERVE_EINVAL;
}

static bool s_is_structural(const char *key)
{
    for (const char *const *k = s_structural; *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

/*  Grows an array of `size`-byte items to hold n + 1; zeroes the new one. */
static void *s_grow(void *array, size_t n, size_t size)
{
    char *bigger = realloc(array, (n + 1) * size);
    if (bigger)
        memset(bigger + n * size, 0, size);
    return bigger;
}

static int s_oom(loader_t *self)
{
    snprintf(self->err->message, sizeof self->err->message, "%s: out of memory",
             self->file ? self->file : "rules");
    return NERVE_ENOMEM;
}

static int s_scalar(loader_t *self, const nerve_conf_t *node, const char *what, const char **out)
{
    *out = NULL;
    if (!node || node->type != NERVE_CONF_SCALAR)
        return nerve_conf_fail(node, self->err, "%s must be a string", what);
    *out = node->text;
    return 0;
}

/*  Builds the params map: every non-structural key of the rule body. */
static int s_params(loader_t *self, const nerve_conf_t *body, msgpack_object *out)
{
    size_t n = 0;
    for (size_t i = 0; i < body->count; i++)
        if (!s_is_structural(body->keys[i]->text))
            n++;
    out->type = MSGPACK_OBJECT_MAP;
    out->via.map.size = (uint32_t)n;
    out->via.map.ptr = NULL;
    if (n == 0)
        return 0;
    msgpack_object_kv *kv = msgpack_zone_malloc(self->rs->zone, n * sizeof *kv);
    if (!kv)
        return s_oom(self);
    size_t j = 0;
    for (size_t i = 0; i < body->count; i++) {
        const nerve_conf_t *k = body->keys[i];
        if (s_is_structural(k->text))
            continue;
        kv[j].key = nerve_obj_str_new(self->rs->zone, k->text, k->text_len);
        if (nerve_conf_to_obj(body->items[i], self->rs->zone, &kv[j].val) != 0)
            return s_oom(self);
        j++;
    }
    out->via.map.ptr = kv;
    return 0;
}

static int s_resolve(loader_t *self, const nerve_conf_t *node, nerve_role_t role,
                     const char *name, const msgpack_object *params, nerve_resolved_t *res,
                     void **prepared)
{
    char reason[512];
    int rc = nerve_modset_resolve_role(self->rs->modules, role, name, res, reason, sizeof reason);
    if (rc != 0)
        return nerve_conf_fail(node, self->err, "%s", reason);
    if (res->fn->prepare) {
        reason[0] = '\0';
        rc = res->fn->prepare(params, prepared, reason, sizeof reason);
        if (rc != 0)
            return nerve_conf_fail(node, self->err, "%s: %s", name,
                                   reason[0] ? reason : nerve_strerror(rc));
    }
    return 0;
}

/*  Copies `map` without the keys target and deadline (the manager's). */
static int s_strip_manager_keys(loader_t *self, const msgpack_object *map, msgpack_object *out)
{
    *out = *map;
    if (map->type != MSGPACK_OBJECT_MAP)
        return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (!nerve_obj_str_eq(k, "target") && !nerve_obj_str_eq(k, "deadline"))
            n++;
    }
    msgpack_object_kv *kv = n ? msgpack_zone_malloc(self->rs->zone, n * sizeof *kv) : NULL;
    if (n && !kv)
        return s_oom(self);
    uint32_t j = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (!nerve_obj_str_eq(k, "target") && !nerve_obj_str_eq(k, "deadline"))
            kv[j++] = map->via.map.ptr[i];
    }
    out->via.map.size = n;
    out->via.map.ptr = kv;
    return 0;
}

static int s_str_template(loader_t *self, const nerve_conf_t *node, const char *text,
                          nerve_tmpl_t **out)
{
    msgpack_object src = nerve_obj_str_new(self->rs->zone, text, strlen(text));
    char reason[256];
    if (nerve_tmpl_compile(&src, out, reason, sizeof reason) != 0)
        return nerve_conf_fail(node, self->err, "%s", reason);
    return 0;
}

static bool s_valid_target(const char *t)
{
    if (strcmp(t, "all") == 0)
        return true;
    const char *prefixes[] = {"host:", "group:", "glob:"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(t, prefixes[i], n) == 0 && t[n] != '\0')
            return true;
    }
    return false;
}

static int s_reaction(loader_t *self, const nerve_conf_t *item, reaction_def_t *r)
{
    if (item->type != NERVE_CONF_MAP || item->count != 1)
        return nerve_conf_fail(item, self->err,
                               "a reaction is a one-key map: '- reactions.module.fn: {args}'");
    const nerve_conf_t *name = item->keys[0], *argsnode = item->items[0];
    r->file = self->file;
    r->line = name->line;
    r->column = name->column;
    r->deadline_ms = DEFAULT_DEADLINE_MS;
    if (!(r->fn = strdup(name->text)))
        return s_oom(self);

    msgpack_object args = {.type = MSGPACK_OBJECT_MAP};
    bool empty = argsnode->type == NERVE_CONF_SCALAR && argsnode->text_len == 0 &&
                 !argsnode->quoted;
    if (!empty) {
        if (argsnode->type != NERVE_CONF_MAP)
            return nerve_conf_fail(argsnode, self->err, "args of %s must be a map", r->fn);
        if (nerve_conf_to_obj(argsnode, self->rs->zone, &args) != 0)
            return s_oom(self);
    }
    const nerve_conf_t *target = nerve_conf_get(argsnode, "target");
    const nerve_conf_t *deadline = nerve_conf_get(argsnode, "deadline");
    if (deadline && nerve_conf_as_duration_ms(deadline, &r->deadline_ms, self->err) != 0)
        return NERVE_EINVAL;
    if (target) {
        const char *t;
        if (s_scalar(self, target, "target", &t) != 0)
            return NERVE_EINVAL;
        if (!strstr(t, "{{") && !s_valid_target(t))
            return nerve_conf_fail(target, self->err,
                                   "target '%s' is not host:<h>, group:<g>, all or glob:<pattern>",
                                   t);
        if (s_str_template(self, target, t, &r->target) != 0)
            return NERVE_EINVAL;
    }
    r->local = target == NULL;

    msgpack_object stripped;
    if (s_strip_manager_keys(self, &args, &stripped) != 0)
        return NERVE_ENOMEM;
    char reason[256];
    if (nerve_tmpl_compile(&stripped, &r->args, reason, sizeof reason) != 0)
        return nerve_conf_fail(argsnode, self->err, "%s: %s", r->fn, reason);

    if (r->local)
        return s_resolve(self, name, NERVE_ROLE_REACTIONS, r->fn, &stripped, &r->resolved,
                         &r->prepared);
    nerve_role_t role;
    const char *dot = strchr(r->fn, '.');
    if (!dot || nerve_role_parse(r->fn, (size_t)(dot - r->fn), &role) != 0 ||
        role != NERVE_ROLE_REACTIONS || !strchr(dot + 1, '.'))
        return nerve_conf_fail(name, self->err, "'%s' is not a reactions.module.function name",
                               r->fn);
    return 0;
}

static int s_reactions(loader_t *self, rule_def_t *rule, const nerve_conf_t *node)
{
    if (node->type != NERVE_CONF_SEQ)
        return nerve_conf_fail(node, self->err, "reactions must be a list");
    rule->reactions = calloc(node->count ? node->count : 1, sizeof *rule->reactions);
    if (!rule->reactions)
        return s_oom(self);
    for (size_t i = 0; i < node->count; i++) {
        rule->nreactions = i + 1;
        int rc = s_reaction(self, node->items[i], &rule->reactions[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int s_chain(loader_t *self, rule_def_t *rule, const nerve_conf_t *node)
{
    if (node->type != NERVE_CONF_SEQ)
        return nerve_conf_fail(node, self->err, "chain must be a list of '- OP: rule_name'");
    rule->chain = calloc(node->count ? node->count : 1, sizeof *rule->chain);
    if (!rule->chain)
        return s_oom(self);
    rule->nchain = node->count;
    for (size_t i = 0; i < node->count; i++) {
        const nerve_conf_t *item = node->items[i];
        if (item->type != NERVE_CONF_MAP || item->count != 1)
            return nerve_conf_fail(item, self->err, "a chain step is a one-key map: '- OR: name'");
        if (s_chain_op_parse(item->keys[0]->text, &rule->chain[i].op) != 0)
            return nerve_conf_fail(item->keys[0], self->err,
                                   "unknown chain operator '%s' (expected AND, OR, AND_NOT, "
                                   "OR_NOT)",
                                   item->keys[0]->text);
        const char *target;
        if (s_scalar(self, item->items[0], "a chained rule name", &target) != 0)
            return NERVE_EINVAL;
        pending_link_t *grown = s_grow(self->pending, self->npending, sizeof *grown);
        if (!grown)
            return s_oom(self);
        self->pending = grown;
        pending_link_t *p = &self->pending[self->npending++];
        p->rule = rule->index;
        p->slot = i;
        p->node = item->items[0];
        if (!(p->name = strdup(target)))
            return s_oom(self);
    }
    return 0;
}

static int s_rule_body(loader_t *self, rule_def_t *rule, const nerve_conf_t *namenode,
                       const nerve_conf_t *body)
{
    nerve_conf_error_t *err = self->err;
    if (body->type != NERVE_CONF_MAP)
        return nerve_conf_fail(body, err, "rule '%s' must be a map of settings", rule->name);
    if (s_params(self, body, &rule->params) != 0)
        return NERVE_ENOMEM;

    const nerve_conf_t *n;
    const char *s;
    if (!(n = nerve_conf_get(body, "rule")))
        return nerve_conf_fail(namenode, err, "rule '%s' has no 'rule:' (e.g. rules.simple.gt)",
                               rule->name);
    if (s_scalar(self, n, "rule", &s) != 0 || !(rule->rule_name = strdup(s)))
        return err->message[0] ? NERVE_EINVAL : s_oom(self);
    if (s_resolve(self, n, NERVE_ROLE_RULES, s, &rule->params, &rule->rule,
                  &rule->rule_prepared) != 0)
        return NERVE_EINVAL;

    if ((n = nerve_conf_get(body, "register"))) {
        if (s_scalar(self, n, "register", &s) != 0 || !(rule->register_name = strdup(s)))
            return err->message[0] ? NERVE_EINVAL : s_oom(self);
        if (s_resolve(self, n, NERVE_ROLE_REGISTERS, s, &rule->params, &rule->reg,
                      &rule->reg_prepared) != 0)
            return NERVE_EINVAL;
    }
    if ((n = nerve_conf_get(body, "field"))) {
        if (s_scalar(self, n, "field", &s) != 0 || !(rule->field = strdup(s)))
            return err->message[0] ? NERVE_EINVAL : s_oom(self);
    }
    if ((n = nerve_conf_get(body, "for"))) {
        int64_t v;
        if (nerve_conf_as_int(n, 1, 1000000, &v, err) != 0)
            return NERVE_EINVAL;
        rule->for_n = (uint32_t)v;
    }
    if ((n = nerve_conf_get(body, "cooldown")) &&
        nerve_conf_as_duration_ms(n, &rule->cooldown_ms, err) != 0)
        return NERVE_EINVAL;

    const char *keytext = DEFAULT_KEY;
    const nerve_conf_t *keynode = namenode;
    if ((n = nerve_conf_get(body, "key"))) {
        if (s_scalar(self, n, "key", &keytext) != 0)
            return NERVE_EINVAL;
        keynode = n;
    }
    if (s_str_template(self, keynode, keytext, &rule->key) != 0)
        return NERVE_EINVAL;

    if ((n = nerve_conf_get(body, "scope"))) {
        if (s_scalar(self, n, "scope", &s) != 0 || !(rule->scope = strdup(s)))
            return err->message[0] ? NERVE_EINVAL : s_oom(self);
    } else {
        size_t len = strlen(self->stem) + 1 + strlen(rule->name) + 1;
        if (!(rule->scope = malloc(len)))
            return s_oom(self);
        snprintf(rule->scope, len, "%s/%s", self->stem, rule->name);
    }
    if ((n = nerve_conf_get(body, "reactions")) && s_reactions(self, rule, n) != 0)
        return NERVE_EINVAL;
    if ((n = nerve_conf_get(body, "chain")) && s_chain(self, rule, n) != 0)
        return NERVE_EINVAL;
    return 0;
}

/*  A rule's name goes into logs, metrics labels, register scopes and every
    reaction it sends (255 bytes at most on the wire): it must be a
    non-empty line of text that fits. */
static int s_check_rule_name(loader_t *self, const nerve_conf_t *namenode)
{
    const char *name = namenode->text;
    size_t n = namenode->text_len; /* a quoted "a\0b" holds a NUL: refused below */
    if (n == 0)
        return nerve_conf_fail(namenode, self->err, "a rule needs a name: '- rule_name: {...}'");
    if (n > NERVE_NAME_MAX)
        return nerve_conf_fail(namenode, self->err, "rule name of %zu bytes: at most %d", n,
                               NERVE_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return nerve_conf_fail(namenode, self->err,
                                   "rule name has a control character (byte %zu)", i + 1);
    return 0;
}

static int s_rule(loader_t *self, block_def_t *block, const nerve_conf_t *item)
{
    ruleset_t *rs = self->rs;
    if (item->type != NERVE_CONF_MAP || item->count != 1)
        return nerve_conf_fail(item, self->err,
                               "each entry under 'rules' is a one-key map: '- rule_name: {...}'");
    const nerve_conf_t *namenode = item->keys[0];
    int rc = s_check_rule_name(self, namenode);
    if (rc != 0)
        return rc;
    for (uint32_t i = self->first_rule; i < rs->nrules; i++)
        if (strcmp(rs->rules[i].name, namenode->text) == 0)
            return nerve_conf_fail(namenode, self->err,
                                   "rule name '%s' already used at line %zu (names are unique "
                                   "in a file)",
                                   namenode->text, rs->rules[i].line);

    rule_def_t *grown = s_grow(rs->rules, rs->nrules, sizeof *grown);
    if (!grown)
        return s_oom(self);
    rs->rules = grown;
    rule_def_t *rule = &rs->rules[rs->nrules];
    rule->index = (uint32_t)rs->nrules++;
    rule->block = (uint32_t)(block - rs->blocks);
    rule->file = self->file;
    rule->line = namenode->line;
    rule->column = namenode->column;
    if (!(rule->name = strdup(namenode->text)))
        return s_oom(self);

    uint32_t *idx = s_grow(block->rules, block->nrules, sizeof *idx);
    if (!idx)
        return s_oom(self);
    block->rules = idx;
    block->rules[block->nrules++] = rule->index;
    return s_rule_body(self, rule, namenode, item->items[0]);
}

static int s_block(loader_t *self, const nerve_conf_t *globnode, const nerve_conf_t *body)
{
    ruleset_t *rs = self->rs;
    block_def_t *grown = s_grow(rs->blocks, rs->nblocks, sizeof *grown);
    if (!grown)
        return s_oom(self);
    rs->blocks = grown;
    block_def_t *block = &rs->blocks[rs->nblocks++];
    block->file = self->file;
    block->line = globnode->line;
    block->column = globnode->column;
    if (!(block->glob = strdup(globnode->text)))
        return s_oom(self);
    if (tag_index_add(rs->index, block->glob, (uint32_t)(rs->nblocks - 1)) != 0)
        return nerve_conf_fail(globnode, self->err,
                               "'%s' is not a tag glob (starts with '/', '*' within a "
                               "segment, '**' across segments)",
                               block->glob);
    if (body->type != NERVE_CONF_MAP)
        return nerve_conf_fail(body, self->err, "tag block '%s' must be a map with 'rules:'",
                               block->glob);
    static const char *const keys[] = {"rules", NULL};
    if (nerve_conf_check_keys(body, keys, self->err) != 0)
        return NERVE_EINVAL;
    const nerve_conf_t *rules = nerve_conf_get(body, "rules");
    if (!rules || rules->type != NERVE_CONF_SEQ)
        return nerve_conf_fail(rules ? rules : globnode, self->err,
                               "tag block '%s' needs 'rules:' as a list", block->glob);
    for (size_t i = 0; i < rules->count; i++) {
        int rc = s_rule(self, block, rules->items[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int s_resolve_pending(loader_t *self)
{
    ruleset_t *rs = self->rs;
    for (size_t i = 0; i < self->npending; i++) {
        pending_link_t *p = &self->pending[i];
        uint32_t found = UINT32_MAX;
        for (uint32_t r = self->first_rule; r < rs->nrules; r++)
            if (strcmp(rs->rules[r].name, p->name) == 0)
                found = r;
        if (found == UINT32_MAX)
            return nerve_conf_fail(p->node, self->err, "chain refers to unknown rule '%s'",
                                   p->name);
        rs->rules[p->rule].chain[p->slot].rule = found;
    }
    return 0;
}

static void s_pending_clear(loader_t *self)
{
    for (size_t i = 0; i < self->npending; i++)
        free(self->pending[i].name);
    free(self->pending);
    self->pending = NULL;
    self->npending = 0;
}

static const char *s_intern_file(ruleset_t *rs, const char *path)
{
    char **grown = s_grow(rs->files, rs->nfiles, sizeof *grown);
    if (!grown)
        return NULL;
    rs->files = grown;
    if (!(rs->files[rs->nfiles] = strdup(path)))
        return NULL;
    return rs->files[rs->nfiles++];
}

static int s_load_file(loader_t *self, const char *path)
{
    if (!(self->file = s_intern_file(self->rs, path)))
        return s_oom(self);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(self->stem, sizeof self->stem, "%s", base);
    char *dot = strrchr(self->stem, '.');
    if (dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
        *dot = '\0';
    self->first_rule = (uint32_t)self->rs->nrules;

    nerve_conf_t *root = NULL;
    int rc = nerve_conf_load(path, &root, self->err);
    if (rc != 0)
        return rc;
    if (root && root->type != NERVE_CONF_MAP)
        rc = nerve_conf_fail(root, self->err,
                             "a rules file is a map of tag globs to {rules: [...]}");
    for (size_t i = 0; rc == 0 && root && i < root->count; i++)
        rc = s_block(self, root->keys[i], root->items[i]);
    if (rc == 0)
        rc = s_resolve_pending(self);
    s_pending_clear(self);
    nerve_conf_destroy(&root);
    return rc;
}

/*  Depth-first search for a cycle through chain links. */
static int s_check_cycles_from(loader_t *self, uint32_t r, uint8_t *color)
{
    ruleset_t *rs = self->rs;
    color[r] = 1;
    const rule_def_t *rule = &rs->rules[r];
    for (size_t i = 0; i < rule->nchain; i++) {
        uint32_t next = rule->chain[i].rule;
        if (color[next] == 1) {
            nerve_conf_error_t *e = self->err;
            snprintf(e->file, sizeof e->file, "%s", rule->file);
            e->line = rule->line;
            e->column = rule->column;
            snprintf(e->message, sizeof e->message,
                     "%s:%zu:%zu: chain cycle: rule '%s' leads back to '%s'", rule->file,
                     rule->line, rule->column, rule->name, rs->rules[next].name);
            return NERVE_EINVAL;
        }
        if (color[next] == 0 && s_check_cycles_from(self, next, color) != 0)
            return NERVE_EINVAL;
    }
    color[r] = 2;
    return 0;
}

static int s_check_cycles(loader_t *self)
{
    size_t n = self->rs->nrules;
    uint8_t *color = calloc(n ? n : 1, 1);
    if (!color)
        return s_oom(self);
    int rc = 0;
    for (uint32_t r = 0; rc == 0 && r < n; r++)
        if (color[r] == 0)
            rc = s_check_cycles_from(self, r, color);
    free(color);
    return rc;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool s_is_rules_file(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

/*  Lists the rules files of a directory, sorted. */
static int s_list_dir(loader_t *self, const char *dir, char ***out, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(self->err->message, sizeof self->err->message, "%s: %s", dir,
                 strerror(errno));
        return NERVE_EIO;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!s_is_rules_file(e->d_name))
            continue;
        char **grown = s_grow(names, n, sizeof *grown);
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *full = grown ? malloc(len) : NULL;
        if (grown)
            names = grown;
        if (!full) {
            rc = s_oom(self);
            break;
        }
        snprintf(full, len, "%s/%s", dir, e->d_name);
        names[n++] = full;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, s_cmp_str);
    *out = names;
    *count = n;
    return rc;
}

int ruleset_load(const char *path, const char *const *dirs, size_t ndirs, ruleset_t **out,
                 nerve_conf_error_t *err)
{
    memset(err, 0, sizeof *err);
    *out = NULL;
    ruleset_t *rs = calloc(1, sizeof *rs);
    loader_t self = {.rs = rs, .err = err, .file = path};
    if (!rs || !(rs->index = tag_index_new()) || !(rs->zone = msgpack_zone_new(8192)) ||
        !(rs->modules = nerve_modset_new(dirs, ndirs))) {
        ruleset_destroy(&rs);
        snprintf(err->message, sizeof err->message, "%s: out of memory", path);
        return NERVE_ENOMEM;
    }
    rs->loaded_ns = nerve_clock_wall_ns();
    atomic_init(&rs->refs, 1);

    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0) {
        snprintf(err->message, sizeof err->message, "%s: %s", path, strerror(errno));
        rc = NERVE_ENOENT;
    } else if (S_ISDIR(st.st_mode)) {
        char **files = NULL;
        size_t nfiles = 0;
        rc = s_list_dir(&self, path, &files, &nfiles);
        for (size_t i = 0; rc == 0 && i < nfiles; i++)
            rc = s_load_file(&self, files[i]);
        for (size_t i = 0; i < nfiles; i++)
            free(files[i]);
        free(files);
    } else {
        rc = s_load_file(&self, path);
    }
    if (rc == 0)
        rc = s_check_cycles(&self);
    s_pending_clear(&self);
    if (rc != 0) {
        if (!err->message[0])
            snprintf(err->message, sizeof err->message, "%s: %s", path, nerve_strerror(rc));
        ruleset_destroy(&rs);
        return rc;
    }
    *out = rs;
    return 0;
}

static void s_release(const nerve_resolved_t *res, void *prepared)
{
    if (prepared && res->fn && res->fn->release)
        res->fn->release(prepared);
}

static void s_rule_free(rule_def_t *rule)
{
    s_release(&rule->rule, rule->rule_prepared);
    s_release(&rule->reg, rule->reg_prepared);
    for (size_t i = 0; i < rule->nreactions; i++) {
        reaction_def_t *r = &rule->reactions[i];
        s_release(&r->resolved, r->prepared);
        nerve_tmpl_destroy(&r->args);
        nerve_tmpl_destroy(&r->target);
        free(r->fn);
    }
    free(rule->reactions);
    free(rule->chain);
    nerve_tmpl_destroy(&rule->key);
    free(rule->name);
    free(rule->scope);
    free(rule->rule_name);
    free(rule->register_name);
    free(rule->field);
}

void ruleset_destroy(ruleset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ruleset_t *self = *self_p;
    for (size_t i = 0; i < self->nrules; i++)
        s_rule_free(&self->rules[i]);
    free(self->rules);
    for (size_t i = 0; i < self->nblocks; i++) {
        free(self->blocks[i].glob);
        free(self->blocks[i].rules);
    }
    free(self->blocks);
    tag_index_destroy(&self->index);
    /* Modules go last: prepared states were released through them. */
    nerve_modset_destroy(&self->modules);
    if (self->zone)
        msgpack_zone_free(self->zone);
    for (size_t i = 0; i < self->nfiles; i++)
        free(self->files[i]);
    free(self->files);
    free(self);
    *self_p = NULL;
}

const rule_def_t *ruleset_find(const ruleset_t *self, const char *name)
{
    for (size_t i = 0; i < self->nrules; i++)
        if (strcmp(self->rules[i].name, name) == 0)
            return &self->rules[i];
    return NULL;
}

ruleset_t *ruleset_ref(ruleset_t *self)
{
    if (self)
        atomic_fetch_add(&self->refs, 1);
    return self;
}

void ruleset_unref(ruleset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if (atomic_fetch_sub(&(*self_p)->refs, 1) == 1)
        ruleset_destroy(self_p);
    *self_p = NULL;
}
