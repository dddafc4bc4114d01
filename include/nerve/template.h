/*  nerve/template.h — `{{…}}` templates in reaction args.

    A reaction's args in a rules file may reference the event and the rule:

        {{event.host}}  {{event.tag}}  {{event.id}}  {{event.data.a.b}}
        {{value}}       {{rule}}

    (spaces inside the braces are allowed: {{ event.host }}). A string that
    is exactly one template keeps the referenced value's msgpack type, so
    `count: "{{event.data.n}}"` passes an integer. A string mixing text and
    templates renders to a string, values formatted as text (numbers in
    shortest form, maps and arrays as JSON). A missing reference renders as
    nil alone, or as the empty string inside text.

    Templates compile once when rules load (syntax errors are load errors,
    reported with the position in the string) and render per firing without
    parsing. nerve_tmpl_t holds a whole args tree: maps and arrays are walked
    and every string in them compiled; keys are not templated.

    Ownership: a compiled tree owns copies of everything it needs. Rendered
    values are allocated from the zone given to render and live as long as
    it does.
    Threading: a compiled tree is immutable; render from any thread.
*/
#ifndef NERVE_TEMPLATE_H
#define NERVE_TEMPLATE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include <nerve/wire.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerve_tmpl nerve_tmpl_t;

/*  What templates may reference. Any pointer may be NULL (renders nil). */
typedef struct nerve_tmpl_ctx {
    const char *tag;
    const char *host;
    const uint8_t *id;            /* 16 bytes; renders as 32 hex chars */
    const msgpack_object *data;   /* the event's data */
    const msgpack_object *value;  /* the value the rule saw */
    const char *rule;
} nerve_tmpl_ctx_t;

/*  Compiles a value tree (usually the args map of one reaction). Returns
    0 and *out, or NERVE_EPARSE with a message in err ("unclosed '{{' at
    offset 7 in 'x {{event.host'", "unknown reference 'evnt.host'"), or
    NERVE_ENOMEM. */
int nerve_tmpl_compile(const msgpack_object *src, nerve_tmpl_t **out, char *err,
                       size_t errsize);

/*  True if the tree contains at least one template reference. */
bool nerve_tmpl_has_refs(const nerve_tmpl_t *self);

/*  Renders into *out, allocating from zone. 0, NERVE_ENOMEM, NERVE_ERANGE
    (a referenced value nests deeper than NERVE_OBJ_DEPTH_MAX) or
    NERVE_EINVAL (NULL self or zone); *out is NIL on error. */
int nerve_tmpl_render(const nerve_tmpl_t *self, const nerve_tmpl_ctx_t *ctx,
                      msgpack_zone *zone, msgpack_object *out);

/*  Renders a single string template (e.g. a rule's `key:`) into buf as
    text. Returns 0, NERVE_ERANGE if it did not fit (truncated, never
    inside a UTF-8 character). The template must have been compiled from
    a str (NERVE_EINVAL otherwise, buf then holds ""). */
int nerve_tmpl_render_text(const nerve_tmpl_t *self, const nerve_tmpl_ctx_t *ctx, char *buf,
                           size_t bufsize);

/*  Frees; sets *self to NULL. Safe on NULL and twice. */
void nerve_tmpl_destroy(nerve_tmpl_t **self);

#ifdef __cplusplus
}
#endif
#endif
