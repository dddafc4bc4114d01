/*  beacons/log.c — beacons.log: lines of a log file that match a regex.

        match   one event per new matching line:
                {value: 1, line, captures: [group 1, …], path}

    Following. The file is read from where it ended when the config loaded
    (old lines are not news), like `tail -F`:
    - Rotation (the path now names another file: logrotate's rename and
      create): the old file is read to its end first, then the new one from
      its start.
    - Truncation (the file got shorter than what was read: copytruncate,
      `> file`): reading starts again at 0. A file truncated and then
      written past the old length between two runs cannot be told from one
      that grew; keep intervals short beside the rate of such rotations.
    - A file that does not exist fails the run (error event) until it
      appears; it is then read from its start.

    Lines. The pattern is a POSIX extended regular expression (regcomp
    REG_EXTENDED; `nocase: true` adds REG_ICASE), matched per line without
    its newline (and a trailing \r). A line longer than 8 KiB is matched on
    its first 8 KiB. Text is sent as UTF-8: invalid bytes become U+FFFD.
    Unmatched groups are nil; each capture is cut at 1 KiB.

    Bounds. At most `max_events` events per run (default 100): further
    matches are counted, not sent, and the next event sent carries their
    number in `skipped`, so a log storm costs the manager a bounded rate
    and nobody is misled. At most 8 MiB is read per run; the rest waits
    for the next.

    Args: `path` (required), `pattern` (required), `nocase`, `max_events`.
*/
#include "probe.h"

#include <regex.h>
#include <stdlib.h>
#include <sys/stat.h>

#define S_FN           "beacons.log.match"
#define S_LINE_MAX     (8 * 1024)
#define S_CAPTURE_MAX  1024
#define S_GROUPS_MAX   9
#define S_CHUNK        (64 * 1024)
#define S_READ_PER_RUN (8u * 1024 * 1024)
#define S_DATA_CAP     (128 * 1024)

typedef struct log_state {
    char path[PATH_MAX];
    regex_t re;
    size_t ngroups;
    int64_t max_events;
    int fd; /* the file being read, or -1 */
    dev_t dev;
    ino_t ino;
    off_t offset;      /* bytes of fd consumed */
    bool start_at_end; /* first open: skip what is already there */
    char line[S_LINE_MAX + 1];
    size_t line_len;
    bool discarding; /* inside an over-long line: skip to its newline */
    char clean[3 * S_LINE_MAX + 4];
    uint8_t *dbuf;    /* builder buffer, S_DATA_CAP */
    uint64_t skipped; /* matches not sent since the last event */
    int64_t emitted;  /* this run */
    int send_err;     /* first emit error of this run */
    char chunk[S_CHUNK];
} log_state_t;

static void s_release(void *prepared)
{
    log_state_t *self = prepared;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    regfree(&self->re);
    free(self->dbuf);
    free(self);
}

static int s_open(log_state_t *self, bool at_end)
{
    int fd = open(self->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    self->fd = fd;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->offset = at_end ? st.st_size : 0;
    self->line_len = 0;
    self->discarding = false;
    return 0;
}

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    static const char *const keys[] = {"path", "pattern", "nocase", "max_events", NULL};
    int rc = probe_check_keys(params, keys, S_FN, err, errsize);
    if (rc != 0)
        return rc;
    log_state_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dbuf = malloc(S_DATA_CAP))) {
        free(self);
        return NERVE_ENOMEM;
    }
    self->fd = -1;
    char pattern[4096];
    bool have_path = false, have_pattern = false, nocase = false;
    rc = probe_param_str(params, "path", NULL, self->path, sizeof self->path, &have_path, S_FN, err,
                         errsize);
    rc = rc ? rc
            : probe_param_str(params, "pattern", NULL, pattern, sizeof pattern, &have_pattern, S_FN,
                              err, errsize);
    rc = rc ? rc : probe_param_bool(params, "nocase", false, &nocase, S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_int(params, "max_events", 100, 1, 100000, &self->max_events, S_FN, err,
                              errsize);
    if (rc == 0 && (!have_path || !have_pattern || self->path[0] != '/')) {
        snprintf(err, errsize, "%s: needs 'path' (absolute) and 'pattern' (a regex)", S_FN);
        rc = NERVE_EINVAL;
    }
    if (rc != 0) {
        free(self->dbuf);
        free(self);
        return rc;
    }
    int r = regcomp(&self->re, pattern, REG_EXTENDED | (nocase ? REG_ICASE : 0));
    if (r != 0) {
        char why[256];
        regerror(r, &self->re, why, sizeof why);
        snprintf(err, errsize, "%s: 'pattern' /%.200s/: %s", S_FN, pattern, why);
        free(self->dbuf);
        free(self);
        return NERVE_EINVAL;
    }
    self->ngroups = self->re.re_nsub < S_GROUPS_MAX ? self->re.re_nsub : S_GROUPS_MAX;
    /* Start at the end of what is there now; a file that is not there yet
       is new when it appears, and is read from its start. */
    struct stat st;
    self->start_at_end = stat(self->path, &st) == 0;
    if (self->start_at_end && s_open(self, true) == 0)
        self->start_at_end = false;
    *prepared = self;
    return 0;
}

/*  Copies n bytes as valid UTF-8 into dst (room for 3n + 1), invalid
    bytes replaced by U+FFFD. Returns the length written. */
static size_t s_clean(const char *src, size_t n, char *dst)
{
    const uint8_t *p = (const uint8_t *)src;
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = 0;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        }
        bool ok = len > 0 && n - i >= len;
        if (ok && len > 1)
            ok = p[i + 1] >= lo && p[i + 1] <= hi;
        for (size_t k = 2; ok && k < len; k++)
            ok = (p[i + k] & 0xc0) == 0x80;
        if (ok) {
            memcpy(dst + out, p + i, len);
            out += len;
            i += len;
        } else {
            memcpy(dst + out, "\xef\xbf\xbd", 3);
            out += 3;
            i++;
        }
    }
    dst[out] = '\0';
    return out;
}

/*  One complete line in self->line. */
static void s_line(log_state_t *self, nerve_beacon_call_t *call)
{
    size_t n = self->line_len;
    if (n && self->line[n - 1] == '\r')
        n--;
    self->line[n] = '\0';
    regmatch_t m[S_GROUPS_MAX + 1];
    if (regexec(&self->re, self->line, self->ngroups + 1, m, 0) != 0)
        return;
    if (self->emitted >= self->max_events) {
        self->skipped++;
        return;
    }
    nerve_data_t d;
    nerve_data_init(&d, self->dbuf, S_DATA_CAP);
    nerve_data_int(&d, "value", 1);
    size_t len = s_clean(self->line, strlen(self->line), self->clean);
    nerve_data_strn(&d, "line", self->clean, len);
    nerve_data_array_begin(&d, "captures");
    for (size_t g = 1; g <= self->ngroups; g++) {
        if (m[g].rm_so < 0) {
            nerve_data_nil(&d, NULL);
            continue;
        }
        size_t glen = (size_t)(m[g].rm_eo - m[g].rm_so);
        len = s_clean(self->line + m[g].rm_so, glen < S_CAPTURE_MAX ? glen : S_CAPTURE_MAX,
                      self->clean);
        nerve_data_strn(&d, NULL, self->clean, len);
    }
    nerve_data_array_end(&d);
    nerve_data_str(&d, "path", self->path);
    if (self->skipped)
        nerve_data_int(&d, "skipped", (int64_t)self->skipped);
    int rc = probe_emit(call, call->tag, &d);
    if (rc == 0)
        self->skipped = 0;
    else if (rc != NERVE_EFULL && !self->send_err)
        self->send_err = rc;
    self->emitted++;
}

/*  Splits bytes into lines; keeps an unfinished last line for later. */
static void s_feed(log_state_t *self, nerve_beacon_call_t *call, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!self->discarding) {
            size_t room = S_LINE_MAX - self->line_len;
            size_t c = take < room ? take : room;
            memcpy(self->line + self->line_len, p, c);
            self->line_len += c;
            if (take > room) { /* too long: match what fits, skip the rest */
                s_line(self, call);
                self->line_len = 0;
                self->discarding = true;
            }
        }
        if (!nl) {
            break;
        }
        if (!self->discarding)
            s_line(self, call);
        self->discarding = false;
        self->line_len = 0;
        p = nl + 1;
        n -= take + 1;
    }
}

/*  Reads the current file from the offset on. Returns 1 at its end, 0
    when the per-run budget ran out first, -1 on a read error (errno). */
static int s_drain(log_state_t *self, nerve_beacon_call_t *call, size_t *budget)
{
    while (*budget > 0) {
        size_t want = *budget < sizeof self->chunk ? *budget : sizeof self->chunk;
        ssize_t n = pread(self->fd, self->chunk, want, self->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        self->offset += n;
        *budget -= (size_t)n;
        s_feed(self, call, self->chunk, (size_t)n);
    }
    return 0;
}

static int s_match(nerve_beacon_call_t *call)
{
    log_state_t *self = call->prepared;
    self->emitted = 0;
    self->send_err = 0;
    size_t budget = S_READ_PER_RUN;
    struct stat pst, fst;
    bool exists = stat(self->path, &pst) == 0;
    int stat_errno = errno;
    if (self->fd < 0) {
        if (!exists)
            return probe_fail(call, NERVE_EIO, "%s: %s", self->path, strerror(stat_errno));
        if (s_open(self, self->start_at_end) != 0)
            return probe_fail(call, NERVE_EIO, "%s: %s", self->path, strerror(errno));
        self->start_at_end = false;
    }
    if (fstat(self->fd, &fst) == 0 && fst.st_size < self->offset) { /* truncated */
        self->offset = 0;
        self->line_len = 0;
        self->discarding = false;
    }
    int r = s_drain(self, call, &budget);
    if (r == 1 && exists && (pst.st_ino != self->ino || pst.st_dev != self->dev)) {
        /* Rotated, and the old file is read to its end: a last line
           without a newline still counts, then on to the new file. */
        if (self->line_len && !self->discarding)
            s_line(self, call);
        close(self->fd);
        self->fd = -1;
        if (s_open(self, false) != 0)
            return probe_fail(call, NERVE_EIO, "%s: %s", self->path, strerror(errno));
        r = s_drain(self, call, &budget);
    }
    if (r < 0)
        return probe_fail(call, NERVE_EIO, "%s: read: %s", self->path, strerror(errno));
    if (self->send_err)
        return probe_fail(call, self->send_err, "%s: a matching line could not be sent: %s",
                          self->path, nerve_strerror(self->send_err));
    return 0;
}

static const nerve_module_fn_t s_functions[] = {
    {"match",
     {.beacon = s_match},
     "follows a log file (rotation, truncation); one event per line matching a regex",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "log", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
