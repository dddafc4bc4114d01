/*  presence.c — the live actor table (see presence.h).

    A plain array, kept small: thousands of actors, one heartbeat each per
    few seconds, is a few hundred lookups a second. Lookups are linear with
    a last-hit cache; expiry sweeps at most once a second.
*/
#include "presence.h"

#include <nerve/log.h>
#include <nerve/value.h>

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIVE_PREFIX "/nerve/actor/"
#define ALIVE_SUFFIX "/alive"

struct presence {
    actor_info_t *actors;
    size_t count, cap;
    uint64_t heartbeat_ms;
    uint64_t next_sweep_ms;
};

presence_t *presence_new(uint64_t heartbeat_ms)
{
    presence_t *self = calloc(1, sizeof *self);
    if (self)
        self->heartbeat_ms = heartbeat_ms ? heartbeat_ms : 5000;
    return self;
}

void presence_destroy(presence_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->actors);
    free(*self_p);
    *self_p = NULL;
}

/*  The <id> of /nerve/actor/<id>/alive, or false. */
static bool s_alive_id(const char *tag, char *id, size_t size)
{
    size_t lp = sizeof ALIVE_PREFIX - 1, ls = sizeof ALIVE_SUFFIX - 1, n = strlen(tag);
    if (n <= lp + ls || strncmp(tag, ALIVE_PREFIX, lp) != 0 ||
        strcmp(tag + n - ls, ALIVE_SUFFIX) != 0)
        return false;
    size_t len = n - lp - ls;
    if (len >= size || memchr(tag + lp, '/', len))
        return false;
    memcpy(id, tag + lp, len);
    id[len] = '\0';
    return true;
}

static actor_info_t *s_find(presence_t *self, const char *id)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->actors[i].id, id) == 0)
            return &self->actors[i];
    return NULL;
}

static void s_update(actor_info_t *a, const msgpack_object *data, uint64_t now_ms)
{
    a->last_seen_ms = now_ms;
    a->last_seen_ns = nerve_clock_wall_ns();
    const msgpack_object *v = nerve_obj_get(data, "version");
    if (v)
        nerve_obj_strcpy(v, a->version, sizeof a->version);
    double up, hb;
    if (nerve_obj_number(nerve_obj_get(data, "uptime_s"), &up) && up >= 0)
        a->uptime_s = (uint64_t)up;
    /* An actor's own interval, within sane bounds (100 ms … 1 h). */
    if (nerve_obj_number(nerve_obj_get(data, "heartbeat_ms"), &hb) && hb >= 100 && hb <= 3.6e6)
        a->heartbeat_ms = (uint64_t)hb;
    const msgpack_object *g = nerve_obj_get(data, "groups");
    if (g && g->type == MSGPACK_OBJECT_ARRAY) {
        a->ngroups = 0;
        for (uint32_t i = 0; i < g->via.array.size && a->ngroups < PRESENCE_GROUPS_MAX; i++)
            if (nerve_obj_strcpy(&g->via.array.ptr[i], a->groups[a->ngroups],
                                 sizeof a->groups[0]))
                a->ngroups++;
    }
}

bool presence_on_event(presence_t *self, const char *tag, const msgpack_object *data,
                       uint64_t now_ms, bool *joined, char *id, size_t idsize)
{
    char aid[NERVE_HOST_MAX + 1];
    *joined = false;
    if (!s_alive_id(tag, aid, sizeof aid))
        return false;
    snprintf(id, idsize, "%s", aid);
    actor_info_t *a = s_find(self, aid);
    if (!a) {
        if (self->count == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 16;
            actor_info_t *grown = realloc(self->actors, cap * sizeof *grown);
            if (!grown)
                return true;
            self->actors = grown;
            self->cap = cap;
        }
        a = &self->actors[self->count++];
        memset(a, 0, sizeof *a);
        snprintf(a->id, sizeof a->id, "%s", aid);
        a->joined_ns = nerve_clock_wall_ns();
        *joined = true;
    }
    s_update(a, data, now_ms);
    return true;
}

void presence_expire(presence_t *self, uint64_t now_ms,
                     void (*lost)(void *arg, const char *id), void *arg)
{
    if (now_ms < self->next_sweep_ms)
        return;
    self->next_sweep_ms = now_ms + 1000;
    for (size_t i = 0; i < self->count;) {
        actor_info_t *a = &self->actors[i];
        uint64_t silence = 3 * (a->heartbeat_ms ? a->heartbeat_ms : self->heartbeat_ms);
        if (now_ms - a->last_seen_ms > silence) {
            char id[NERVE_HOST_MAX + 1];
            snprintf(id, sizeof id, "%s", a->id);
            self->actors[i] = self->actors[--self->count];
            lost(arg, id);
        } else {
            i++;
        }
    }
}

size_t presence_match(const presence_t *self, const char *glob,
                      void (*fn)(void *arg, const actor_info_t *actor), void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++) {
        if (fnmatch(glob, self->actors[i].id, 0) == 0) {
            fn(arg, &self->actors[i]);
            n++;
        }
    }
    return n;
}

size_t presence_count(const presence_t *self)
{
    return self->count;
}

const actor_info_t *presence_at(const presence_t *self, size_t i)
{
    return i < self->count ? &self->actors[i] : NULL;
}
