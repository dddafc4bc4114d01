/*  log.c — leveled, rate-limited logging to stderr, and the clocks.

    One line per call, written with a single write(2) so lines from several
    threads do not interleave. Under systemd (JOURNAL_STREAM set) lines carry
    a "<N>" syslog priority prefix that journald understands; on a terminal
    they carry a UTC timestamp and the level name instead.
*/
#include <nerve/error.h>
#include <nerve/log.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int s_level = -1; /* -1: not yet read from the environment */
static _Atomic int s_journal = -1;

static int s_level_now(void)
{
    int level = atomic_load_explicit(&s_level, memory_order_relaxed);
    if (level < 0) {
        nerve_log_level_t parsed = NERVE_LOG_INFO;
        const char *env = getenv("NERVE_LOG_LEVEL");
        if (env)
            nerve_log_level_parse(env, &parsed);
        level = (int)parsed;
        atomic_store(&s_level, level);
    }
    return level;
}

void nerve_log_set_level(nerve_log_level_t level)
{
    atomic_store(&s_level, (int)level);
}

nerve_log_level_t nerve_log_get_level(void)
{
    return (nerve_log_level_t)s_level_now();
}

int nerve_log_level_parse(const char *name, nerve_log_level_t *level)
{
    static const struct {
        const char *name;
        nerve_log_level_t level;
    } levels[] = {{"error", NERVE_LOG_ERROR}, {"warn", NERVE_LOG_WARN},
                  {"warning", NERVE_LOG_WARN}, {"info", NERVE_LOG_INFO},
                  {"debug", NERVE_LOG_DEBUG}};
    for (size_t i = 0; name && i < sizeof levels / sizeof levels[0]; i++) {
        if (strcasecmp(name, levels[i].name) == 0) {
            *level = levels[i].level;
            return NERVE_OK;
        }
    }
    return NERVE_EINVAL;
}

static const char *s_level_name(nerve_log_level_t level)
{
    switch (level) {
    case NERVE_LOG_ERROR: return "ERROR";
    case NERVE_LOG_WARN: return "WARN";
    case NERVE_LOG_INFO: return "INFO";
    default: return "DEBUG";
    }
}

static bool s_to_journal(void)
{
    int j = atomic_load_explicit(&s_journal, memory_order_relaxed);
    if (j < 0) {
        j = getenv("JOURNAL_STREAM") != NULL;
        atomic_store(&s_journal, j);
    }
    return j;
}

static void s_vlog(nerve_log_level_t level, const char *id, const char *suffix, const char *fmt,
                   va_list ap)
{
    char line[2048];
    size_t n = 0;
    if (s_to_journal()) {
        n = (size_t)snprintf(line, sizeof line, "<%d>%s: ", (int)level, id);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = (size_t)snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, s_level_name(level), id);
    }
    if (n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (suffix && n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s", suffix);
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void nerve_log(nerve_log_level_t level, const char *id, const char *fmt, ...)
{
    if ((int)level > s_level_now())
        return;
    va_list ap;
    va_start(ap, fmt);
    s_vlog(level, id, NULL, fmt, ap);
    va_end(ap);
}

uint64_t nerve_ratelimit_take(nerve_ratelimit_t *rl)
{
    uint64_t now = nerve_clock_mono_ms();
    uint64_t next = atomic_load(&rl->next_ms);
    if (now < next || !atomic_compare_exchange_strong(&rl->next_ms, &next,
                                                      now + rl->interval_ms)) {
        atomic_fetch_add(&rl->suppressed, 1);
        return 0;
    }
    return atomic_exchange(&rl->suppressed, 0) + 1;
}

void nerve_log_rl(nerve_ratelimit_t *rl, nerve_log_level_t level, const char *id,
                  const char *fmt, ...)
{
    if ((int)level > s_level_now())
        return;
    uint64_t n = nerve_ratelimit_take(rl);
    if (n == 0)
        return;
    char suffix[64] = "";
    if (n > 1)
        snprintf(suffix, sizeof suffix, " (%llu similar suppressed)",
                 (unsigned long long)(n - 1));
    va_list ap;
    va_start(ap, fmt);
    s_vlog(level, id, suffix, fmt, ap);
    va_end(ap);
}

uint64_t nerve_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t nerve_clock_mono_ms(void)
{
    return nerve_clock_mono_ns() / 1000000ull;
}

uint64_t nerve_clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
