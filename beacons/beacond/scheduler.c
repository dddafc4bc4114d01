/*  scheduler.c — nerve-beacond's loop (see scheduler.h).

    Handlers, each small and named for what it does:
      s_run_entry      call one beacon, clear its scratch, report a failure
      s_api_emit*      what a beacon emits: pack, filter (onchange), send
      s_deliver        the onchange filter and the send itself
      s_report_error   /nerve/beacon/<host>/error, without repeating itself

    Sending is nerve_beacon_send_raw() on one nerve_beacon_t: it checks the
    tag and data like any app's beacon, queues without blocking, and counts
    what a full queue drops. So a beacon module that emits garbage gets
    NERVE_EINVAL back instead of reaching the manager.

    onchange keeps, per beacon, the last value sent on each tag (a probe
    like disk.usage emits on one tag per mount). A value is remembered only
    once it was actually queued, so a change dropped by a full queue is
    sent again at the next run.

    Counters are kept for the daemon and per beacon. A reload builds a new
    scheduler, so beacond_carry() copies them over: Prometheus takes a
    counter that goes down for a restart, and rate() would show a spike.
    A beacon is "the same" across a reload when its fn and tag are; its
    series on /metrics is labelled with both (the configured tag, one per
    beacon, not the tags of the events it sends).
*/
#define _GNU_SOURCE /* pipe2 */
#include "scheduler.h"

#include <nerve/beacon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/metrics.h>
#include <nerve/module.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_ERROR_REPEAT_MS 60000 /* a lasting failure is re-sent this often */
#define S_SLOTS_MAX       4096  /* onchange tags remembered per beacon */
#define S_ERROR_MAX       512

typedef struct onchange_slot {
    char *tag;
    double value;
    uint64_t sent_ms;
} onchange_slot_t;

typedef struct beacond_entry {
    beacond_t *owner;
    char fn_name[NERVE_NAME_MAX + 1];
    char where[320];
    nerve_beacon_fn_t fn;
    nerve_release_fn_t release;
    void *prepared;
    msgpack_object params; /* in owner->params_zone */
    char tag[NERVE_TAG_MAX + 1];
    uint64_t interval_ms;
    uint64_t next_ms; /* monotonic; 0 = now */
    bool onchange;
    double delta;
    uint64_t refresh_ms;
    onchange_slot_t *slots;
    size_t nslots, capslots;
    bool slots_full_logged;
    bool failing;
    char last_error[S_ERROR_MAX];
    uint64_t last_error_ms;
    beacond_beacon_stats_t stats;
    size_t first; /* the first entry with this fn and tag: its /metrics series */
    size_t nth;   /* how many entries before this one have its fn and tag */
    bool shared;  /* another entry has its fn and tag */
} beacond_entry_t;

struct beacond {
    char host[BEACOND_HOST_MAX + 1];
    char error_tag[NERVE_TAG_MAX + 1];
    nerve_beacon_t *out;
    nerve_modset_t *mods;
    msgpack_zone *params_zone;
    msgpack_zone *scratch; /* call->zone, cleared after each run */
    msgpack_zone *unpack;  /* raw data unpacked for onchange */
    msgpack_sbuffer pack;  /* emit(): the object packed */
    beacond_entry_t *entries;
    size_t n;
    beacond_stats_t stats;
    uint64_t dropped_base;    /* drops counted before this scheduler's connection */
    bool reload_failed;       /* the last reload failed (nerve_beacond_reload_last_ok) */
    nerve_metrics_t *metrics; /* not owned */
    nerve_mtext_t *mtext;
};

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_hup;
static int s_wake[2] = {-1, -1};

void beacond_request_stop(void)
{
    s_stop = 1;
    if (s_wake[1] >= 0) {
        int e = errno;
        ssize_t w = write(s_wake[1], "s", 1);
        (void)w;
        errno = e;
    }
}

void beacond_request_reload(void)
{
    s_hup = 1;
    if (s_wake[1] >= 0) {
        int e = errno;
        ssize_t w = write(s_wake[1], "h", 1);
        (void)w;
        errno = e;
    }
}

/* ----------------------------------------------------------- onchange */

/*  The slot remembering `tag`, created on first use; NULL when the beacon
    already tracks S_SLOTS_MAX tags (its events then all go out). */
static onchange_slot_t *s_slot(beacond_entry_t *e, const char *tag)
{
    for (size_t i = 0; i < e->nslots; i++)
        if (strcmp(e->slots[i].tag, tag) == 0)
            return &e->slots[i];
    if (e->nslots == S_SLOTS_MAX) {
        if (!e->slots_full_logged)
            NERVE_WARN("beacond",
                       "%s: onchange tracks at most %d tags; events on more tags "
                       "are sent unfiltered",
                       e->fn_name, S_SLOTS_MAX);
        e->slots_full_logged = true;
        return NULL;
    }
    if (e->nslots == e->capslots) {
        size_t cap = e->capslots ? e->capslots * 2 : 4;
        onchange_slot_t *slots = realloc(e->slots, cap * sizeof *slots);
        if (!slots)
            return NULL;
        e->slots = slots;
        e->capslots = cap;
    }
    char *copy = strdup(tag);
    if (!copy)
        return NULL;
    onchange_slot_t *slot = &e->slots[e->nslots++];
    slot->tag = copy;
    slot->value = 0;
    slot->sent_ms = 0; /* never sent */
    return slot;
}

/*  Sends one event unless onchange holds it back. */
static int s_deliver(beacond_entry_t *e, const char *tag, bool has_value, double value,
                     const void *data, size_t len)
{
    beacond_t *self = e->owner;
    if (!tag || !data)
        return NERVE_EINVAL;
    onchange_slot_t *slot = NULL;
    uint64_t now = nerve_clock_mono_ms();
    if (e->onchange && has_value && (slot = s_slot(e, tag)) && slot->sent_ms) {
        bool moved = e->delta > 0 ? fabs(value - slot->value) > e->delta : !(value == slot->value);
        bool stale = e->refresh_ms && now - slot->sent_ms >= e->refresh_ms;
        if (!moved && !stale) {
            self->stats.suppressed++;
            e->stats.suppressed++;
            return 0;
        }
    }
    int rc = nerve_beacon_send_raw(self->out, tag, data, len);
    if (rc == 0) {
        self->stats.emitted++;
        e->stats.emitted++;
        if (slot) {
            slot->value = value;
            slot->sent_ms = now ? now : 1;
        }
    } else if (rc == NERVE_EFULL || rc == NERVE_EIO || rc == NERVE_ENOMEM) {
        self->stats.dropped++;
        e->stats.dropped++;
    }
    return rc;
}

/* ------------------------------------------------------------ host API */

static int s_api_emit_raw(void *host, const char *tag, const void *data, size_t len)
{
    beacond_entry_t *e = host;
    bool has = false;
    double v = 0;
    if (e->onchange && data && len) {
        msgpack_zone_clear(e->owner->unpack);
        msgpack_object obj;
        size_t off = 0;
        if (msgpack_unpack(data, len, &off, e->owner->unpack, &obj) == MSGPACK_UNPACK_SUCCESS)
            has = nerve_obj_number(nerve_obj_get(&obj, "value"), &v);
    }
    return s_deliver(e, tag, has, v, data, len);
}

static int s_api_emit(void *host, const char *tag, const msgpack_object *data)
{
    beacond_entry_t *e = host;
    beacond_t *self = e->owner;
    if (!data)
        return NERVE_EINVAL;
    self->pack.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->pack, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *data) != 0)
        return NERVE_ENOMEM;
    double v = 0;
    bool has = nerve_obj_number(nerve_obj_get(data, "value"), &v);
    return s_deliver(e, tag, has, v, self->pack.data, self->pack.size);
}

static int s_api_register_set(void *host, const char *scope, const char *key,
                              const msgpack_object *value)
{
    return NERVE_ESTATE; /* registers live on the manager */
}

static int s_api_allowed(void *host, const char *kind, const char *what)
{
    return NERVE_EPERM;
}

static const char *s_api_host_id(void *host)
{
    beacond_entry_t *e = host;
    return e->owner->host;
}

static const nerve_host_api_t s_api = {
    .size = sizeof(nerve_host_api_t),
    .emit = s_api_emit,
    .emit_raw = s_api_emit_raw,
    .register_set = s_api_register_set,
    .allowed = s_api_allowed,
    .host_id = s_api_host_id,
};

/* ------------------------------------------------------------- running */

/*  Sends an event whose data is n string fields. A text that is not
    UTF-8 (a path in another encoding) goes with its non-ASCII bytes as
    '?' rather than not at all. Returns the send's result. */
static int s_send_texts(beacond_t *self, const char *tag, const char *const *keys,
                        const char *const *texts, size_t n)
{
    char buf[4096], clean[1024];
    nerve_data_t d;
    for (int pass = 0; pass < 2; pass++) {
        nerve_data_init(&d, buf, sizeof buf);
        for (size_t i = 0; i < n; i++) {
            snprintf(clean, sizeof clean, "%s", texts[i]);
            for (char *p = clean; pass && *p; p++)
                if ((unsigned char)*p >= 0x80)
                    *p = '?';
            nerve_data_str(&d, keys[i], clean);
        }
        if (nerve_data_error(&d) == 0)
            break;
    }
    int rc = nerve_beacon_send(self->out, tag, &d);
    if (rc == 0)
        self->stats.emitted++;
    else if (rc != NERVE_EINVAL)
        self->stats.dropped++;
    return rc;
}

static void s_report_error(beacond_entry_t *e, const char *msg)
{
    beacond_t *self = e->owner;
    uint64_t now = nerve_clock_mono_ms();
    bool same = e->failing && strcmp(e->last_error, msg) == 0;
    if (same && now - e->last_error_ms < S_ERROR_REPEAT_MS)
        return;
    e->failing = true;
    e->last_error_ms = now;
    snprintf(e->last_error, sizeof e->last_error, "%s", msg);
    NERVE_WARN("beacond", "%s (tag %s): %s", e->fn_name, e->tag, msg);
    static const char *const keys[] = {"fn", "tag", "error"};
    const char *texts[] = {e->fn_name, e->tag, msg};
    s_send_texts(self, self->error_tag, keys, texts, 3);
}

static int s_run_entry(beacond_entry_t *e)
{
    beacond_t *self = e->owner;
    char error[S_ERROR_MAX] = "";
    nerve_beacon_call_t call = {
        .params = &e->params,
        .prepared = e->prepared,
        .tag = e->tag,
        .api = &s_api,
        .host = e,
        .zone = self->scratch,
        .error = error,
        .error_cap = sizeof error,
    };
    self->stats.runs++;
    e->stats.runs++;
    int rc = e->fn(&call);
    msgpack_zone_clear(self->scratch);
    error[sizeof error - 1] = '\0';     /* whatever the module wrote */
    if (rc == 0 || rc == NERVE_EFULL) { /* a full queue is counted as dropped */
        if (e->failing)
            NERVE_INFO("beacond", "%s (tag %s): working again", e->fn_name, e->tag);
        e->failing = false;
        return 0;
    }
    self->stats.failures++;
    e->stats.failures++;
    if (!error[0]) {
        const char *what = nerve_strerror(rc);
        if (strcmp(what, "unknown error") == 0)
            snprintf(error, sizeof error, "failed with code %d", rc);
        else
            snprintf(error, sizeof error, "%s", what);
    }
    s_report_error(e, error);
    return rc;
}

void beacond_set_metrics(beacond_t *self, nerve_metrics_t *m)
{
    self->metrics = m;
    if (m && !self->mtext)
        self->mtext = nerve_mtext_new();
}

/*  One beacon's series: the sum over every entry that shares its fn and
    tag (a config may list one twice), in the first such entry's place. */
static void s_render_beacon(beacond_t *self, size_t first)
{
    beacond_beacon_stats_t sum = {0};
    size_t end = self->entries[first].shared ? self->n : first + 1;
    for (size_t i = first; i < end; i++) {
        const beacond_beacon_stats_t *st = &self->entries[i].stats;
        if (self->entries[i].first != first)
            continue;
        sum.runs += st->runs;
        sum.failures += st->failures;
        sum.emitted += st->emitted;
        sum.suppressed += st->suppressed;
        sum.dropped += st->dropped;
    }
    const beacond_entry_t *e = &self->entries[first];
    const char *const *labels = NERVE_LABELS("fn", e->fn_name, "tag", e->tag);
    nerve_mtext_t *t = self->mtext;
    nerve_mtext_counter(t, "nerve_beacond_beacon_runs_total", "Calls of each beacon.", labels,
                        sum.runs);
    nerve_mtext_counter(t, "nerve_beacond_beacon_failures_total",
                        "Calls of each beacon that failed.", labels, sum.failures);
    nerve_mtext_counter(t, "nerve_beacond_beacon_events_total",
                        "Events each beacon emitted that were queued to the manager.", labels,
                        sum.emitted);
    nerve_mtext_counter(t, "nerve_beacond_beacon_suppressed_total",
                        "Events of each beacon onchange held back.", labels, sum.suppressed);
    nerve_mtext_counter(t, "nerve_beacond_beacon_dropped_total",
                        "Events of each beacon dropped: the queue to the manager was full.", labels,
                        sum.dropped);
}

static void s_render_metrics(beacond_t *self)
{
    nerve_mtext_t *t = self->mtext;
    if (!t)
        return;
    beacond_stats_t st;
    beacond_stats(self, &st);
    nerve_mtext_reset(t);
    nerve_mtext_counter(t, "nerve_beacond_runs_total", "Beacon function calls.", NULL, st.runs);
    nerve_mtext_counter(t, "nerve_beacond_failures_total", "Beacon calls that failed.", NULL,
                        st.failures);
    nerve_mtext_counter(t, "nerve_beacond_events_total", "Events handed to the manager link.", NULL,
                        st.emitted);
    nerve_mtext_counter(t, "nerve_beacond_suppressed_total", "Events onchange held back.", NULL,
                        st.suppressed);
    nerve_mtext_counter(t, "nerve_beacond_dropped_total",
                        "Events dropped: the queue to the manager was full.", NULL, st.dropped);
    nerve_mtext_counter(t, "nerve_beacond_reload_attempts_total",
                        "Reloads tried (SIGHUP), as the manager and the actor count them.", NULL,
                        st.reloads + st.reload_failures);
    nerve_mtext_counter(t, "nerve_beacond_reloads_total",
                        "Reloads (SIGHUP) that replaced the configuration.", NULL, st.reloads);
    nerve_mtext_counter(t, "nerve_beacond_reload_failures_total",
                        "Reloads that failed: the previous configuration kept running.", NULL,
                        st.reload_failures);
    nerve_mtext_gauge(t, "nerve_beacond_reload_last_ok", "1 unless the last reload failed.", NULL,
                      self->reload_failed ? 0.0 : 1.0);
    nerve_mtext_gauge(t, "nerve_beacond_beacons", "Beacons configured.", NULL, (double)self->n);
    for (size_t i = 0; i < self->n; i++)
        if (self->entries[i].first == i)
            s_render_beacon(self, i);
    nerve_metrics_publish(self->metrics, t);
}

int beacond_run(beacond_t *self)
{
    while (!s_stop) {
        if (nerve_metrics_due(self->metrics, nerve_clock_mono_ms()))
            s_render_metrics(self);
        if (s_hup) {
            s_hup = 0;
            return BEACOND_RELOAD;
        }
        uint64_t wake = UINT64_MAX;
        for (size_t i = 0; i < self->n && !s_stop && !s_hup; i++) {
            beacond_entry_t *e = &self->entries[i];
            uint64_t now = nerve_clock_mono_ms();
            if (e->next_ms <= now) {
                s_run_entry(e);
                /* Keep the rhythm; after a stall (a slow probe, a
                   suspended machine) skip the missed runs. */
                e->next_ms += e->interval_ms;
                now = nerve_clock_mono_ms();
                if (e->next_ms <= now)
                    e->next_ms = now + e->interval_ms;
            }
            if (e->next_ms < wake)
                wake = e->next_ms;
        }
        if (s_stop || s_hup)
            continue;
        uint64_t now = nerve_clock_mono_ms();
        if (self->metrics) {
            uint64_t due = nerve_metrics_next_ms(self->metrics, now);
            if (due < wake)
                wake = due;
        }
        int timeout = wake == UINT64_MAX     ? -1
                      : wake <= now          ? 0
                      : wake - now > INT_MAX ? INT_MAX
                                             : (int)(wake - now);
        struct pollfd p = {s_wake[0], POLLIN, 0};
        if (poll(&p, 1, timeout) > 0) {
            char drain[64];
            while (read(s_wake[0], drain, sizeof drain) > 0)
                ;
        }
    }
    return BEACOND_STOPPED;
}

size_t beacond_run_once(beacond_t *self)
{
    size_t failed = 0;
    for (size_t i = 0; i < self->n; i++)
        failed += s_run_entry(&self->entries[i]) != 0;
    return failed;
}

void beacond_report_reload_failure(beacond_t *self, const char *why)
{
    self->stats.reload_failures++;
    self->reload_failed = true;
    char tag[NERVE_TAG_MAX + 1];
    snprintf(tag, sizeof tag, "/nerve/beacon/%s/reload/failed", self->host);
    static const char *const keys[] = {"error"};
    s_send_texts(self, tag, keys, &why, 1);
}

void beacond_stats(const beacond_t *self, beacond_stats_t *out)
{
    *out = self->stats;
    /*  The connection may count a drop the scheduler did not see; its
        count starts from 0 with each scheduler's connection. */
    nerve_beacon_stats_t st;
    if (nerve_beacon_stats(self->out, &st) == 0 && self->dropped_base + st.dropped > out->dropped)
        out->dropped = self->dropped_base + st.dropped;
}

int beacond_beacon_stats(const beacond_t *self, size_t i, beacond_beacon_stats_t *out)
{
    if (i >= self->n)
        return NERVE_ERANGE;
    *out = self->entries[i].stats;
    return 0;
}

static bool s_same_beacon(const beacond_entry_t *a, const beacond_entry_t *b)
{
    return strcmp(a->fn_name, b->fn_name) == 0 && strcmp(a->tag, b->tag) == 0;
}

void beacond_carry(beacond_t *next, const beacond_t *prev)
{
    beacond_stats_t st;
    beacond_stats(prev, &st);
    next->stats.runs += st.runs;
    next->stats.failures += st.failures;
    next->stats.emitted += st.emitted;
    next->stats.suppressed += st.suppressed;
    next->stats.dropped += st.dropped;
    next->stats.reloads += st.reloads + 1;
    next->stats.reload_failures += st.reload_failures;
    next->dropped_base += st.dropped;
    for (size_t i = 0; i < next->n; i++) {
        beacond_entry_t *e = &next->entries[i];
        for (size_t j = 0; j < prev->n; j++) {
            const beacond_entry_t *p = &prev->entries[j];
            if (p->nth != e->nth || !s_same_beacon(p, e))
                continue;
            e->stats.runs += p->stats.runs;
            e->stats.failures += p->stats.failures;
            e->stats.emitted += p->stats.emitted;
            e->stats.suppressed += p->stats.suppressed;
            e->stats.dropped += p->stats.dropped;
            break;
        }
    }
}

size_t beacond_count(const beacond_t *self)
{
    return self->n;
}

/* ------------------------------------------------------------ building */

/*  beacons.load.avg → /load/avg/<host>. */
static int s_default_tag(const char *fn, const char *host, char *out, size_t size)
{
    const char *rest = strchr(fn, '.');
    if (!rest)
        return NERVE_EINVAL;
    int n = snprintf(out, size, "%s/%s", rest, host);
    if (n < 0 || (size_t)n >= size || n > NERVE_TAG_MAX)
        return NERVE_ERANGE;
    for (char *p = out; *p && p < out + strlen(rest); p++)
        if (*p == '.')
            *p = '/';
    return 0;
}

static int s_entry(beacond_t *self, const beacond_config_t *cfg, const beacond_beacon_conf_t *b,
                   beacond_entry_t *e, char *err, size_t errsize)
{
    e->owner = self;
    snprintf(e->where, sizeof e->where, "%s", b->where);
    snprintf(e->fn_name, sizeof e->fn_name, "%s", b->fn);
    char why[1024] = "";
    nerve_resolved_t res;
    int rc =
        nerve_modset_resolve_role(self->mods, NERVE_ROLE_BEACONS, b->fn, &res, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errsize, "%s: %s", b->where, why);
        return rc;
    }
    e->fn = res.fn->fn.beacon;
    e->release = res.fn->release;
    if (!e->fn) {
        snprintf(err, errsize, "%s: %s has no function pointer", b->where, b->fn);
        return NERVE_EMODULE;
    }
    if ((rc = nerve_obj_copy(self->params_zone, &b->params, &e->params)) != 0) {
        snprintf(err, errsize, "%s: %s: params: %s", b->where, b->fn, nerve_strerror(rc));
        return rc;
    }
    if (b->tag)
        snprintf(e->tag, sizeof e->tag, "%s", b->tag);
    else if (s_default_tag(b->fn, self->host, e->tag, sizeof e->tag) != 0) {
        snprintf(err, errsize, "%s: %s: the default tag is too long; give a 'tag'", b->where,
                 b->fn);
        return NERVE_ERANGE;
    }
    e->interval_ms = b->interval_ms ? b->interval_ms : cfg->interval_ms;
    e->onchange = b->onchange;
    e->delta = b->delta;
    e->refresh_ms = b->refresh_ms;
    if (res.fn->prepare) {
        why[0] = '\0';
        rc = res.fn->prepare(&e->params, &e->prepared, why, sizeof why);
        why[sizeof why - 1] = '\0';
        if (rc != 0) {
            snprintf(err, errsize, "%s: %s", b->where, why[0] ? why : nerve_strerror(rc));
            return rc;
        }
    }
    return 0;
}

beacond_t *beacond_new(const beacond_config_t *cfg, char *err, size_t errsize)
{
    if (!beacond_host_ok(cfg->host)) {
        snprintf(err, errsize, "host '%.80s' must be 1-%d bytes of letters, digits and . _ - : @",
                 cfg->host ? cfg->host : "", BEACOND_HOST_MAX);
        return NULL;
    }
    if (cfg->nmodules == 0) {
        snprintf(err, errsize, "no module directories (set 'modules' or --modules)");
        return NULL;
    }
    if (s_wake[0] < 0 && pipe2(s_wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errsize, "pipe: %s", strerror(errno));
        return NULL;
    }
    beacond_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    snprintf(self->host, sizeof self->host, "%s", cfg->host);
    snprintf(self->error_tag, sizeof self->error_tag, "/nerve/beacon/%s/error", cfg->host);
    msgpack_sbuffer_init(&self->pack);
    self->mods = nerve_modset_new((const char *const *)cfg->modules, cfg->nmodules);
    self->params_zone = msgpack_zone_new(4096);
    self->scratch = msgpack_zone_new(8192);
    self->unpack = msgpack_zone_new(8192);
    self->entries = cfg->nbeacons ? calloc(cfg->nbeacons, sizeof *self->entries) : NULL;
    if (!self->mods || !self->params_zone || !self->scratch || !self->unpack ||
        (cfg->nbeacons && !self->entries)) {
        snprintf(err, errsize, "out of memory (or a bad module directory; see the log)");
        beacond_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nbeacons; i++) {
        beacond_entry_t *e = &self->entries[i];
        int rc = s_entry(self, cfg, &cfg->beacons[i], e, err, errsize);
        if (rc != 0) {
            beacond_destroy(&self);
            return NULL;
        }
        self->n = i + 1; /* from here on destroy releases it */
        e->first = i;
        for (size_t j = 0; j < i; j++) {
            if (!s_same_beacon(&self->entries[j], e))
                continue;
            if (e->nth++ == 0)
                e->first = j;
            self->entries[j].shared = true;
        }
    }
    nerve_beacon_options_t o = {.host = self->host,
                                .hwm = cfg->hwm,
                                .server_key = cfg->manager_key,
                                .client_key = cfg->security.name,
                                .keys = cfg->security.keys,
                                .insecure = cfg->security.insecure};
    if (cfg->check_only) /* no connection, so no keypair made for a dry run */
        return self;
    self->out = nerve_beacon_new(cfg->manager, &o);
    if (!self->out) {
        snprintf(err, errsize, "cannot connect to the manager at '%s' (see above)",
                 cfg->manager ? cfg->manager : "");
        beacond_destroy(&self);
        return NULL;
    }
    return self;
}

void beacond_destroy(beacond_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    beacond_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->n; i++) {
        beacond_entry_t *e = &self->entries[i];
        if (e->release)
            e->release(e->prepared);
        for (size_t k = 0; k < e->nslots; k++)
            free(e->slots[k].tag);
        free(e->slots);
    }
    free(self->entries);
    nerve_mtext_destroy(&self->mtext);
    nerve_modset_destroy(&self->mods); /* after release(): it lives in them */
    nerve_beacon_destroy(&self->out);
    if (self->params_zone)
        msgpack_zone_free(self->params_zone);
    if (self->scratch)
        msgpack_zone_free(self->scratch);
    if (self->unpack)
        msgpack_zone_free(self->unpack);
    msgpack_sbuffer_destroy(&self->pack);
    free(self);
}
