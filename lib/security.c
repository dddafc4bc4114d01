/*  security.c — CURVE keys, the allowlist, socket set-up and the ZAP handler.

    Four parts, in file order:

    1. The `security:` config map and the start-up warning.
    2. Keys on disk. Files are in czmq's zcert text format (ZPL: a
       `metadata` section, and `curve` with public-key and secret-key), so
       zcert_load() and other ZeroMQ tools read them. Keys are made with
       zcert_new() and serialised with zconfig, but the file I/O is ours:
       zcert_save_secret() creates its file with fopen() while it flips the
       process-wide umask (racy with any other thread creating files), and
       zcert_load() reads by name, so the file whose mode we checked and
       the file we parse could differ. Here a secret is created
       O_EXCL at 0600 and read from the descriptor we fstat()ed. Writes go
       to a hidden temporary that is link()ed into place: a reader never
       sees half a key, and nothing is ever overwritten.
    3. nerve_sec_server / nerve_sec_client: the libzmq socket options.
    4. The ZAP handler (RFC 27). The daemons use raw libzmq contexts and
       czmq's zauth lives in czmq's own context, so we answer ZAP requests
       ourselves: a thread with a REP socket on inproc://zeromq.zap.01 of
       the daemon's context. It owns three key sets (admitted, rejected,
       pending) rebuilt from the directories when their mtimes move. The
       daemon's threads read the admitted set per message through
       nerve_zap_allowed(); it sits behind a rwlock and is swapped whole.

    Everything fails closed: a CURVE server socket is only made while a
    handler runs (and, where libzmq has ZMQ_ZAP_ENFORCE_DOMAIN, refuses
    peers when none answers), a key directory others can write empties the
    admitted set, and an unknown key never gets in unless auto_accept says
    so, and then only within the write bounds.
*/
#define _GNU_SOURCE
#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/security.h>

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define LOG_ID "security"

/*  Part of libzmq's draft API, which Debian builds libzmq with. A libzmq
    without it answers EINVAL, and nerve_sec_server's own check remains. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/*  A zcert file is a few hundred bytes; anything much larger is not one. */
#define KEY_FILE_MAX 16384

/*  What remote peers can make us write: new pending (or auto-accepted)
    key files per second, and in all. */
#define RECORD_PER_SEC 5
#define RECORD_MAX     1000

/*  How often the handler looks at the directories' mtimes, and how often
    it re-reads everything regardless (a file rewritten in place does not
    change its directory's mtime). */
#define CHECK_MS 1000
#define FULL_MS  30000

#define PENDING_HEX NERVE_KEY_PENDING_NAME_LEN

/*  A ZAP request has 7 frames for CURVE; more is malformed. */
#define ZAP_FRAMES_MAX 8

static const char s_z85_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

static void s_err(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errsize, const char *fmt, ...)
{
    if (!err || errsize == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

/*  "<dir>/<sub>/<name><ext>", sub may be NULL. NERVE_ERANGE if too long. */
static int s_path(char *buf, size_t size, const char *dir, const char *sub, const char *name,
                  const char *ext)
{
    int n = sub ? snprintf(buf, size, "%s/%s/%s%s", dir, sub, name, ext)
                : snprintf(buf, size, "%s/%s%s", dir, name, ext);
    return n < 0 || (size_t)n >= size ? NERVE_ERANGE : 0;
}

static void s_z85(char out[NERVE_Z85_KEY_LEN + 1], const uint8_t key[32])
{
    zmq_z85_encode(out, key, 32);
}

/*  Strictly 40 characters of the Z85 alphabet, then decoded. */
static bool s_z85_decode(uint8_t key[32], const char *text)
{
    if (!text || strnlen(text, NERVE_Z85_KEY_LEN + 1) != NERVE_Z85_KEY_LEN)
        return false;
    for (size_t i = 0; i < NERVE_Z85_KEY_LEN; i++)
        if (!memchr(s_z85_alphabet, text[i], sizeof s_z85_alphabet - 1))
            return false;
    return zmq_z85_decode(key, text) != NULL;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ========================================================================
   1. Configuration
   ======================================================================== */

int nerve_security_init(nerve_security_t *self, const char *name)
{
    memset(self, 0, sizeof *self);
    int rc = nerve_home_path("keys", self->keys, sizeof self->keys);
    if (rc != 0)
        self->keys[0] = '\0';
    if (!nerve_key_name_valid(name))
        return NERVE_EINVAL;
    snprintf(self->name, sizeof self->name, "%s", name);
    return rc;
}

int nerve_security_parse(nerve_security_t *self, const nerve_conf_t *node, nerve_conf_error_t *err)
{
    if (!node)
        return 0;
    if (node->type != NERVE_CONF_MAP)
        return nerve_conf_fail(node, err,
                               "security must be a map (curve, insecure, keys, auto_accept)");
    static const char *const keys[] = {"curve", "insecure", "keys", "auto_accept", NULL};
    int rc = nerve_conf_check_keys(node, keys, err);
    if (rc != 0)
        return rc;

    const nerve_conf_t *curve_node = nerve_conf_get(node, "curve");
    const nerve_conf_t *insecure_node = nerve_conf_get(node, "insecure");
    bool curve = true, insecure = false;
    if (curve_node && (rc = nerve_conf_as_bool(curve_node, &curve, err)) != 0)
        return rc;
    if (insecure_node && (rc = nerve_conf_as_bool(insecure_node, &insecure, err)) != 0)
        return rc;
    /*  Turning CURVE off hands the fleet to whoever reaches a port, so it
        takes one unmistakable spelling. */
    if (!curve && !insecure)
        return nerve_conf_fail(curve_node, err,
                               "curve: false turns encryption and authentication off; "
                               "write insecure: true as well to mean it");
    if (curve_node && curve && insecure)
        return nerve_conf_fail(insecure_node, err,
                               "insecure: true contradicts curve: true; keep one of them");
    self->insecure = insecure;

    const nerve_conf_t *n = nerve_conf_get(node, "keys");
    if (n) {
        const char *dir;
        if ((rc = nerve_conf_as_str(n, &dir, err)) != 0)
            return rc;
        if (!dir[0])
            return nerve_conf_fail(n, err, "keys must name a directory");
        if (strlen(dir) > NERVE_KEYS_DIR_MAX) {
            nerve_conf_fail(n, err, "keys: path longer than %d bytes", NERVE_KEYS_DIR_MAX);
            return NERVE_ERANGE;
        }
        snprintf(self->keys, sizeof self->keys, "%s", dir);
    }
    n = nerve_conf_get(node, "auto_accept");
    if (n && (rc = nerve_conf_as_bool(n, &self->auto_accept, err)) != 0)
        return rc;
    return 0;
}

void nerve_security_warn(const char *daemon, const nerve_security_t *self)
{
    if (self->insecure) {
        NERVE_WARN(daemon, "security: insecure: true — CURVE is off: links are unencrypted and "
                           "anyone who can reach this daemon's TCP sockets can use them "
                           "(see docs/security.md)");
        return;
    }
    if (self->auto_accept)
        NERVE_WARN(daemon,
                   "security: auto_accept is on — ANY key that connects is let in and "
                   "recorded in %s/accepted/; for labs only, never on a real network",
                   self->keys);
    NERVE_INFO(daemon, "security: CURVE on, key %s/%s.pub", self->keys, self->name);
}

const char *nerve_security_mode(const nerve_security_t *self)
{
    if (self->insecure)
        return "insecure";
    return self->auto_accept ? "curve+auto_accept" : "curve";
}

/* ========================================================================
   2. Keys on disk
   ======================================================================== */

static const char *const s_state_dir[] = {
    [NERVE_KEY_LOCAL] = NULL,
    [NERVE_KEY_ACCEPTED] = "accepted",
    [NERVE_KEY_PENDING] = "pending",
    [NERVE_KEY_REJECTED] = "rejected",
};

const char *nerve_key_state_name(nerve_key_state_t state)
{
    switch (state) {
    case NERVE_KEY_LOCAL:
        return "local";
    case NERVE_KEY_ACCEPTED:
        return "accepted";
    case NERVE_KEY_PENDING:
        return "pending";
    case NERVE_KEY_REJECTED:
        return "rejected";
    }
    return "?";
}

bool nerve_key_name_valid(const char *name)
{
    if (!name || !name[0] || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; name[i]; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || i >= NERVE_KEY_NAME_MAX)
            return false;
    }
    return true;
}

static int s_name_check(const char *dir, const char *name, char *err, size_t errsize)
{
    if (!dir || !dir[0]) {
        s_err(err, errsize, "no keys directory given");
        return NERVE_EINVAL;
    }
    if (!nerve_key_name_valid(name)) {
        s_err(err, errsize,
              "invalid key name '%.80s' (1-%d of A-Z a-z 0-9 . _ -, not starting with . or -)",
              name ? name : "(null)", NERVE_KEY_NAME_MAX);
        return NERVE_EINVAL;
    }
    return 0;
}

/*  The directory must exist (or be created 0700 when `create`) and must
    not be writable by group or others: whoever can write it can grant
    themselves access. */
static int s_dir_safe(const char *dir, bool create, char *err, size_t errsize)
{
    if (create)
        return nerve_private_dir(dir, err, errsize);
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        s_err(err, errsize, "%s: %s", dir, strerror(e));
        return e == ENOENT ? NERVE_ENOENT : NERVE_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        s_err(err, errsize, "%s: not a directory", dir);
        return NERVE_EIO;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        s_err(err, errsize, "%s: writable by group or others (mode %03o); chmod 700 it", dir,
              (unsigned)(st.st_mode & 0777));
        return NERVE_EPERM;
    }
    return 0;
}

/*  The keys directory and its three state directories, created 0700. */
static int s_dirs_prepare(const char *dir, char *err, size_t errsize)
{
    int rc = s_dir_safe(dir, true, err, errsize);
    for (int s = NERVE_KEY_ACCEPTED; rc == 0 && s <= NERVE_KEY_REJECTED; s++) {
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, s_state_dir[s]) >= (int)sizeof sub) {
            s_err(err, errsize, "%s: path too long", dir);
            return NERVE_ERANGE;
        }
        rc = s_dir_safe(sub, true, err, errsize);
    }
    return rc;
}

int nerve_keys_load(const char *path, uint8_t public_key[32], uint8_t secret_key[32], char *err,
                    size_t errsize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        s_err(err, errsize, "%s: %s", path, strerror(e));
        return e == ENOENT ? NERVE_ENOENT : e == EACCES ? NERVE_EPERM : NERVE_EIO;
    }
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    zconfig_t *root = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s_err(err, errsize, "%s: %s", path, strerror(errno));
        rc = NERVE_EIO;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        s_err(err, errsize, "%s: not a regular file", path);
        rc = NERVE_EPERM;
        goto done;
    }
    if (secret_key && (st.st_mode & 077)) {
        s_err(err, errsize,
              "%s: secret key readable by group or others (mode %03o); chmod 600 it and "
              "consider the key exposed",
              path, (unsigned)(st.st_mode & 0777));
        rc = NERVE_EPERM;
        goto done;
    }
    if (secret_key && st.st_uid != geteuid() && st.st_uid != 0) {
        s_err(err, errsize, "%s: secret key owned by uid %u, not by this user (uid %u) or root",
              path, (unsigned)st.st_uid, (unsigned)geteuid());
        rc = NERVE_EPERM;
        goto done;
    }
    if (!secret_key && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        s_err(err, errsize, "%s: writable by group or others (mode %03o); chmod 644 it", path,
              (unsigned)(st.st_mode & 0777));
        rc = NERVE_EPERM;
        goto done;
    }
    if (st.st_size > KEY_FILE_MAX) {
        s_err(err, errsize, "%s: %lld bytes is too large for a key file", path,
              (long long)st.st_size);
        rc = NERVE_EPARSE;
        goto done;
    }
    if (!(text = malloc((size_t)st.st_size + 1))) {
        rc = NERVE_ENOMEM;
        goto done;
    }
    while (len < (size_t)st.st_size) {
        ssize_t got = read(fd, text + len, (size_t)st.st_size - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            s_err(err, errsize, "%s: %s", path, strerror(errno));
            rc = NERVE_EIO;
            goto done;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    text[len] = '\0';
    root = zconfig_str_load(text);
    const char *pub = root ? zconfig_get(root, "/curve/public-key", NULL) : NULL;
    if (!s_z85_decode(public_key, pub)) {
        s_err(err, errsize, "%s: not a key file (no valid curve/public-key)", path);
        rc = NERVE_EPARSE;
        goto done;
    }
    if (secret_key) {
        const char *sec = zconfig_get(root, "/curve/secret-key", NULL);
        char derived[NERVE_Z85_KEY_LEN + 1];
        if (!s_z85_decode(secret_key, sec)) {
            s_err(err, errsize, "%s: no valid curve/secret-key (is this a .pub file?)", path);
            rc = NERVE_EPARSE;
            goto done;
        }
        if (zmq_curve_public(derived, sec) != 0 || strcmp(derived, pub) != 0) {
            s_err(err, errsize, "%s: public-key does not belong to secret-key", path);
            rc = NERVE_EPARSE;
            goto done;
        }
    }
done:
    if (text)
        explicit_bzero(text, len);
    free(text);
    zconfig_destroy(&root);
    close(fd);
    if (rc != 0 && secret_key)
        explicit_bzero(secret_key, 32);
    return rc;
}

/*  Metadata values go between double quotes in ZPL, which has no escapes:
    keep printable ASCII without '"'. */
static void s_clean(char *out, size_t size, const char *in, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        char c = in[i];
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"') ? c : '_';
    }
    out[n] = '\0';
}

static void s_now_text(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*  A key in zcert's layout, as czmq writes it. meta: name/value pairs,
    NULL-ended. Returns malloc'd text or NULL. */
static char *s_cert_text(const uint8_t public_key[32], const uint8_t *secret_key,
                         const char *const *meta)
{
    zconfig_t *root = zconfig_new("root", NULL);
    if (!root)
        return NULL;
    char when[32];
    s_now_text(when, sizeof when);
    zconfig_set_comment(root, "   ****  Generated on %s by nerve  ****", when);
    if (secret_key) {
        zconfig_set_comment(root, "   ZeroMQ CURVE **Secret** Certificate");
        zconfig_set_comment(root, "   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its "
                                  "permissions.");
    } else {
        zconfig_set_comment(root, "   ZeroMQ CURVE Public Certificate");
        zconfig_set_comment(root, "   Exchange securely, or verify the key after exchange.");
    }
    zconfig_t *section = zconfig_new("metadata", root);
    for (size_t i = 0; section && meta && meta[i] && meta[i + 1]; i += 2) {
        char value[256];
        s_clean(value, sizeof value, meta[i + 1], strlen(meta[i + 1]));
        zconfig_t *item = zconfig_new(meta[i], section);
        if (item)
            zconfig_set_value(item, "%s", value);
    }
    char z85[NERVE_Z85_KEY_LEN + 1];
    s_z85(z85, public_key);
    zconfig_put(root, "/curve/public-key", z85);
    if (secret_key) {
        s_z85(z85, secret_key);
        zconfig_put(root, "/curve/secret-key", z85);
        explicit_bzero(z85, sizeof z85);
    }
    char *text = zconfig_str_save(root);
    zconfig_destroy(&root);
    return text;
}

/*  Writes `text` to `path` with exactly `mode`, atomically and never over
    an existing file: a hidden temporary beside it, fsync, link, unlink.
    NERVE_EEXIST if path exists. */
static int s_write_new(const char *path, const char *text, mode_t mode, char *err, size_t errsize)
{
    static _Atomic unsigned s_seq;
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    const char *base = slash ? slash + 1 : path;
    if (snprintf(tmp, sizeof tmp, "%.*s/.%s.%ld.%u.tmp", dirlen, slash ? path : ".", base,
                 (long)getpid(), atomic_fetch_add(&s_seq, 1)) >= (int)sizeof tmp) {
        s_err(err, errsize, "%s: path too long", path);
        return NERVE_ERANGE;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        s_err(err, errsize, "%s: cannot create: %s", tmp, strerror(errno));
        return NERVE_EIO;
    }
    int rc = 0;
    size_t len = strlen(text), done = 0;
    if (fchmod(fd, mode) != 0)
        rc = NERVE_EIO;
    while (rc == 0 && done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = NERVE_EIO;
        else
            done += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = NERVE_EIO;
    if (close(fd) != 0 && rc == 0)
        rc = NERVE_EIO;
    if (rc != 0) {
        s_err(err, errsize, "%s: cannot write: %s", tmp, strerror(errno));
    } else if (link(tmp, path) != 0) {
        int e = errno;
        s_err(err, errsize, "%s: %s", path, e == EEXIST ? "already exists" : strerror(e));
        rc = e == EEXIST ? NERVE_EEXIST : NERVE_EIO;
    }
    unlink(tmp);
    return rc;
}

/*  Writes a public key file; `name` goes into its metadata. */
static int s_write_public(const char *path, const uint8_t key[32], const char *const *meta,
                          char *err, size_t errsize)
{
    char *text = s_cert_text(key, NULL, meta);
    if (!text) {
        s_err(err, errsize, "%s: out of memory", path);
        return NERVE_ENOMEM;
    }
    int rc = s_write_new(path, text, 0644, err, errsize);
    free(text);
    return rc;
}

int nerve_keys_gen(const char *dir, const char *name, char *err, size_t errsize)
{
    int rc = s_name_check(dir, name, err, errsize);
    if (rc != 0 || (rc = s_dir_safe(dir, true, err, errsize)) != 0)
        return rc;
    char pub_path[PATH_MAX], sec_path[PATH_MAX];
    if (s_path(pub_path, sizeof pub_path, dir, NULL, name, ".pub") != 0 ||
        s_path(sec_path, sizeof sec_path, dir, NULL, name, ".secret") != 0) {
        s_err(err, errsize, "%s: path too long", dir);
        return NERVE_ERANGE;
    }
    const char *exists = s_exists(sec_path) ? sec_path : s_exists(pub_path) ? pub_path : NULL;
    if (exists) {
        s_err(err, errsize,
              "%s already exists; keys are never overwritten (to rotate, see "
              "docs/security.md)",
              exists);
        return NERVE_EEXIST;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        s_err(err, errsize, "cannot make a keypair (out of memory?)");
        return NERVE_ENOMEM;
    }
    char host[256], when[32];
    s_clean(host, sizeof host, nerve_hostname(), strlen(nerve_hostname()));
    s_now_text(when, sizeof when);
    const char *meta[] = {"name", name, "host", host, "created", when, NULL};
    char *text = s_cert_text(zcert_public_key(cert), zcert_secret_key(cert), meta);
    if (!text) {
        rc = NERVE_ENOMEM;
        s_err(err, errsize, "%s: out of memory", sec_path);
    } else {
        rc = s_write_new(sec_path, text, 0600, err, errsize);
        explicit_bzero(text, strlen(text));
        free(text);
    }
    if (rc == 0) {
        rc = s_write_public(pub_path, zcert_public_key(cert), meta, err, errsize);
        if (rc != 0)
            unlink(sec_path);
    }
    zcert_destroy(&cert);
    return rc;
}

int nerve_keys_ensure(const char *dir, const char *name, bool *generated, char *err, size_t errsize)
{
    if (generated)
        *generated = false;
    int rc = s_name_check(dir, name, err, errsize);
    if (rc != 0)
        return rc;
    char pub_path[PATH_MAX], sec_path[PATH_MAX];
    if (s_path(pub_path, sizeof pub_path, dir, NULL, name, ".pub") != 0 ||
        s_path(sec_path, sizeof sec_path, dir, NULL, name, ".secret") != 0) {
        s_err(err, errsize, "%s: path too long", dir);
        return NERVE_ERANGE;
    }
    /*  Two daemons may race to make the same key: the loser of the link()
        finds the winner's files and loads them. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s_exists(sec_path)) {
            uint8_t pub[32], sec[32];
            if ((rc = s_dir_safe(dir, false, err, errsize)) != 0 ||
                (rc = nerve_keys_load(sec_path, pub, sec, err, errsize)) != 0)
                return rc;
            explicit_bzero(sec, sizeof sec);
            if (s_exists(pub_path))
                return 0;
            const char *meta[] = {"name", name, NULL};
            rc = s_write_public(pub_path, pub, meta, err, errsize);
            return rc == NERVE_EEXIST ? 0 : rc;
        }
        if (s_exists(pub_path)) {
            s_err(err, errsize,
                  "%s holds a public key without its .secret: a server key to pin, not a "
                  "keypair of this daemon; use another name",
                  pub_path);
            return NERVE_EEXIST;
        }
        rc = nerve_keys_gen(dir, name, err, errsize);
        if (rc != NERVE_EEXIST) {
            if (rc == 0 && generated)
                *generated = true;
            if (rc == 0)
                NERVE_INFO(LOG_ID, "made keypair %s (public key %s)", sec_path, pub_path);
            return rc;
        }
    }
    return rc;
}

int nerve_keys_resolve(const char *dir, const char *server, char z85[NERVE_Z85_KEY_LEN + 1],
                       char *err, size_t errsize)
{
    uint8_t key[32];
    char path[PATH_MAX];
    int rc = 0;
    z85[0] = '\0';
    if (!server || !server[0]) {
        s_err(err, errsize, "no server key given");
        return NERVE_EINVAL;
    }
    /*  Z85 has '/' and '.' in its alphabet, so a key can look like a path
        and a 40-character name like a key: a file that exists wins. */
    bool named = nerve_key_name_valid(server) && dir && dir[0];
    if (named && s_path(path, sizeof path, dir, NULL, server, ".pub") != 0) {
        s_err(err, errsize, "%s: path too long", dir);
        return NERVE_ERANGE;
    }
    if (named && s_exists(path)) {
        rc = nerve_keys_load(path, key, NULL, err, errsize);
    } else if (s_z85_decode(key, server) && !s_exists(server)) {
        rc = 0;
    } else if (strchr(server, '/')) {
        rc = nerve_keys_load(server, key, NULL, err, errsize);
    } else if (named) {
        s_err(err, errsize, "no server key %s: copy the server's %s.pub there", path, server);
        return NERVE_ENOENT;
    } else {
        s_err(err, errsize, "'%.80s' is neither a key name, a path nor a 40-character Z85 key",
              server);
        return NERVE_EINVAL;
    }
    if (rc == 0)
        s_z85(z85, key);
    return rc;
}

static void s_pending_name(const uint8_t key[32], char name[PENDING_HEX + 1])
{
    for (int i = 0; i < PENDING_HEX / 2; i++)
        snprintf(name + 2 * i, 3, "%02x", key[i]);
}

int nerve_keys_pending_name(const char *z85, char name[NERVE_KEY_PENDING_NAME_LEN + 1])
{
    uint8_t key[32];
    name[0] = '\0';
    if (!s_z85_decode(key, z85))
        return NERVE_EINVAL;
    s_pending_name(key, name);
    return 0;
}

static int s_filter_pub(const struct dirent *entry)
{
    size_t len = strlen(entry->d_name);
    if (len <= 4 || len - 4 > NERVE_KEY_NAME_MAX || strcmp(entry->d_name + len - 4, ".pub"))
        return 0;
    char stem[NERVE_KEY_NAME_MAX + 1];
    memcpy(stem, entry->d_name, len - 4);
    stem[len - 4] = '\0';
    return nerve_key_name_valid(stem);
}

int nerve_keys_list(const char *dir, nerve_keys_list_fn *fn, void *arg, char *err, size_t errsize)
{
    if (!dir || !fn) {
        s_err(err, errsize, "no keys directory or callback given");
        return NERVE_EINVAL;
    }
    int rc = 0;
    for (int s = NERVE_KEY_LOCAL; rc == 0 && s <= NERVE_KEY_REJECTED; s++) {
        char path[PATH_MAX];
        int n = s_state_dir[s] ? snprintf(path, sizeof path, "%s/%s", dir, s_state_dir[s])
                               : snprintf(path, sizeof path, "%s", dir);
        if (n < 0 || n >= (int)sizeof path) {
            s_err(err, errsize, "%s: path too long", dir);
            return NERVE_ERANGE;
        }
        struct dirent **entries = NULL;
        int count = scandir(path, &entries, s_filter_pub, alphasort);
        if (count < 0) {
            if (errno == ENOENT)
                continue;
            s_err(err, errsize, "%s: %s", path, strerror(errno));
            return NERVE_EIO;
        }
        for (int i = 0; i < count; i++) {
            if (rc == 0) {
                char file[PATH_MAX], z85[NERVE_Z85_KEY_LEN + 1], stem[NERVE_KEY_NAME_MAX + 1];
                uint8_t key[32];
                size_t len = strlen(entries[i]->d_name) - 4;
                memcpy(stem, entries[i]->d_name, len);
                stem[len] = '\0';
                bool ok = snprintf(file, sizeof file, "%s/%s", path, entries[i]->d_name) <
                              (int)sizeof file &&
                          nerve_keys_load(file, key, NULL, NULL, 0) == 0;
                if (ok)
                    s_z85(z85, key);
                rc = fn((nerve_key_state_t)s, stem, ok ? z85 : NULL, arg);
            }
            free(entries[i]);
        }
        free(entries);
    }
    return rc;
}

/*  Moves <dir>/<from>/<name>.pub to <dir>/<to>/<name>.pub without ever
    replacing a file. NERVE_ENOENT when there is no such source. */
static int s_move(const char *dir, const char *from, const char *to, const char *name, char *err,
                  size_t errsize)
{
    char src[PATH_MAX], dst[PATH_MAX];
    if (s_path(src, sizeof src, dir, from, name, ".pub") != 0 ||
        s_path(dst, sizeof dst, dir, to, name, ".pub") != 0) {
        s_err(err, errsize, "%s: path too long", dir);
        return NERVE_ERANGE;
    }
    if (link(src, dst) == 0) {
        unlink(src);
        return 0;
    }
    int e = errno;
    if (e == ENOENT && !s_exists(src))
        return NERVE_ENOENT;
    if (e == EEXIST) {
        uint8_t a[32], b[32];
        if (nerve_keys_load(src, a, NULL, NULL, 0) == 0 &&
            nerve_keys_load(dst, b, NULL, NULL, 0) == 0 && memcmp(a, b, 32) == 0) {
            unlink(src);
            return 0;
        }
        s_err(err, errsize, "%s already holds a different key; not replacing it", dst);
        return NERVE_EEXIST;
    }
    s_err(err, errsize, "cannot move %s to %s: %s", src, dst, strerror(e));
    return NERVE_EIO;
}

/*  Copies this host's <dir>/<name>.pub into <dir>/<to>/. */
static int s_copy_local(const char *dir, const char *to, const char *name, char *err,
                        size_t errsize)
{
    char src[PATH_MAX], dst[PATH_MAX];
    if (s_path(src, sizeof src, dir, NULL, name, ".pub") != 0 ||
        s_path(dst, sizeof dst, dir, to, name, ".pub") != 0) {
        s_err(err, errsize, "%s: path too long", dir);
        return NERVE_ERANGE;
    }
    uint8_t key[32], have[32];
    int rc = nerve_keys_load(src, key, NULL, err, errsize);
    if (rc != 0)
        return rc;
    const char *meta[] = {"name", name, "source", "local", NULL};
    rc = s_write_public(dst, key, meta, err, errsize);
    if (rc == NERVE_EEXIST && nerve_keys_load(dst, have, NULL, NULL, 0) == 0 &&
        memcmp(key, have, 32) == 0)
        rc = 0;
    return rc;
}

static bool s_in(const char *dir, const char *sub, const char *name)
{
    char path[PATH_MAX];
    return s_path(path, sizeof path, dir, sub, name, ".pub") == 0 && s_exists(path);
}

int nerve_keys_accept(const char *dir, const char *name, char *err, size_t errsize)
{
    int rc = s_name_check(dir, name, err, errsize);
    if (rc != 0 || (rc = s_dirs_prepare(dir, err, errsize)) != 0)
        return rc;
    if (s_in(dir, "accepted", name))
        return 0;
    if ((rc = s_move(dir, "pending", "accepted", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if ((rc = s_move(dir, "rejected", "accepted", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if ((rc = s_copy_local(dir, "accepted", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    s_err(err, errsize,
          "no key '%s' in %s/pending, %s/rejected or %s (for a key from another host, copy "
          "its .pub file into pending/ first)",
          name, dir, dir, dir);
    return NERVE_ENOENT;
}

int nerve_keys_reject(const char *dir, const char *name, char *err, size_t errsize)
{
    int rc = s_name_check(dir, name, err, errsize);
    if (rc != 0 || (rc = s_dirs_prepare(dir, err, errsize)) != 0)
        return rc;
    if (s_in(dir, "rejected", name))
        return 0;
    if ((rc = s_move(dir, "pending", "rejected", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if ((rc = s_move(dir, "accepted", "rejected", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if ((rc = s_copy_local(dir, "rejected", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    s_err(err, errsize, "no key '%s' in %s/pending, %s/accepted or %s", name, dir, dir, dir);
    return NERVE_ENOENT;
}

int nerve_keys_revoke(const char *dir, const char *name, char *err, size_t errsize)
{
    int rc = s_name_check(dir, name, err, errsize);
    if (rc != 0 || (rc = s_dirs_prepare(dir, err, errsize)) != 0)
        return rc;
    if ((rc = s_move(dir, "accepted", "rejected", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if ((rc = s_copy_local(dir, "rejected", name, err, errsize)) != NERVE_ENOENT)
        return rc;
    if (s_in(dir, "rejected", name))
        return 0;
    s_err(err, errsize, "'%s' is not an accepted key (no %s/accepted/%s.pub)", name, dir, name);
    return NERVE_ENOENT;
}

/* ========================================================================
   3. Sockets
   ======================================================================== */

/*  How many ZAP handlers with CURVE on run in this process. */
static _Atomic int s_zap_running;

static int s_setopt(void *socket, int option, const void *value, size_t len, const char *what,
                    char *err, size_t errsize)
{
    if (zmq_setsockopt(socket, option, value, len) == 0)
        return 0;
    s_err(err, errsize, "cannot set %s: %s", what, zmq_strerror(zmq_errno()));
    return NERVE_EIO;
}

/*  This daemon's keypair, <keys>/<name>.secret. */
static int s_own_keys(const nerve_security_t *sec, uint8_t pub[32], uint8_t secret[32], char *err,
                      size_t errsize)
{
    char path[PATH_MAX];
    int rc = s_name_check(sec->keys, sec->name, err, errsize);
    if (rc != 0 || (rc = s_dir_safe(sec->keys, false, err, errsize)) != 0)
        return rc;
    if (s_path(path, sizeof path, sec->keys, NULL, sec->name, ".secret") != 0) {
        s_err(err, errsize, "%s: path too long", sec->keys);
        return NERVE_ERANGE;
    }
    rc = nerve_keys_load(path, pub, secret, err, errsize);
    if (rc == NERVE_ENOENT)
        s_err(err, errsize, "%s: no such keypair; run `nerve keys gen %s`", path, sec->name);
    return rc;
}

int nerve_sec_server(void *socket, const nerve_security_t *sec, char *err, size_t errsize)
{
    if (!socket || !sec) {
        s_err(err, errsize, "no socket or security settings given");
        return NERVE_EINVAL;
    }
    if (sec->insecure)
        return 0;
    if (atomic_load(&s_zap_running) == 0) {
        s_err(err, errsize,
              "no ZAP handler runs in this process: call nerve_zap_start() "
              "before making a CURVE server (without one any key gets in)");
        return NERVE_ESTATE;
    }
    uint8_t pub[32], secret[32];
    int rc = s_own_keys(sec, pub, secret, err, errsize);
    if (rc != 0)
        return rc;
    int on = 1;
    rc = s_setopt(socket, ZMQ_CURVE_SERVER, &on, sizeof on, "ZMQ_CURVE_SERVER", err, errsize);
    if (rc == 0)
        rc = s_setopt(socket, ZMQ_CURVE_SECRETKEY, secret, 32, "ZMQ_CURVE_SECRETKEY", err, errsize);
    if (rc == 0)
        rc = s_setopt(socket, ZMQ_CURVE_PUBLICKEY, pub, 32, "ZMQ_CURVE_PUBLICKEY", err, errsize);
    if (rc == 0)
        rc = s_setopt(socket, ZMQ_ZAP_DOMAIN, NERVE_ZAP_DOMAIN, strlen(NERVE_ZAP_DOMAIN),
                      "ZMQ_ZAP_DOMAIN", err, errsize);
    /*  With this, a peer is refused when no handler answers (say, after
        nerve_zap_stop) instead of let in. Not in every libzmq build. */
    if (rc == 0 && zmq_setsockopt(socket, ZMQ_ZAP_ENFORCE_DOMAIN, &on, sizeof on) != 0 &&
        zmq_errno() != EINVAL)
        rc = s_setopt(socket, ZMQ_ZAP_ENFORCE_DOMAIN, &on, sizeof on, "ZMQ_ZAP_ENFORCE_DOMAIN", err,
                      errsize);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

int nerve_sec_client(void *socket, const nerve_security_t *sec, const char *server, char *err,
                     size_t errsize)
{
    if (!socket || !sec) {
        s_err(err, errsize, "no socket or security settings given");
        return NERVE_EINVAL;
    }
    if (sec->insecure)
        return 0;
    char z85[NERVE_Z85_KEY_LEN + 1];
    uint8_t server_key[32], pub[32], secret[32];
    int rc = nerve_keys_resolve(sec->keys, server, z85, err, errsize);
    if (rc != 0)
        return rc;
    s_z85_decode(server_key, z85);
    if ((rc = s_own_keys(sec, pub, secret, err, errsize)) != 0)
        return rc;
    rc = s_setopt(socket, ZMQ_CURVE_SERVERKEY, server_key, 32, "ZMQ_CURVE_SERVERKEY", err, errsize);
    if (rc == 0)
        rc = s_setopt(socket, ZMQ_CURVE_PUBLICKEY, pub, 32, "ZMQ_CURVE_PUBLICKEY", err, errsize);
    if (rc == 0)
        rc = s_setopt(socket, ZMQ_CURVE_SECRETKEY, secret, 32, "ZMQ_CURVE_SECRETKEY", err, errsize);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

/* ========================================================================
   4. The ZAP handler
   ======================================================================== */

/*  An open-addressing set of 32-byte keys. Keys are chosen by remote
    peers, so the hash is seeded per process; even a crafted cluster costs
    at most one probe per admitted key. */
typedef struct keyset {
    uint8_t (*slots)[32];
    uint8_t *used;
    size_t cap; /* 0 or a power of two */
    size_t count;
} keyset_t;

static uint64_t s_seed;
static pthread_once_t s_seed_once = PTHREAD_ONCE_INIT;

static void s_seed_init(void)
{
    if (getrandom(&s_seed, sizeof s_seed, GRND_NONBLOCK) != sizeof s_seed)
        s_seed = nerve_clock_mono_ns() ^ ((uint64_t)getpid() << 32);
}

static size_t s_hash(const uint8_t key[32])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t x = a ^ s_seed ^ (b * 0x9e3779b97f4a7c15ull);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

static bool s_set_has(const keyset_t *set, const uint8_t key[32])
{
    if (set->cap == 0)
        return false;
    size_t mask = set->cap - 1;
    for (size_t i = s_hash(key) & mask, n = 0; n < set->cap; i = (i + 1) & mask, n++) {
        if (!set->used[i])
            return false;
        if (memcmp(set->slots[i], key, 32) == 0)
            return true;
    }
    return false;
}

static void s_set_put(keyset_t *set, const uint8_t key[32])
{
    size_t mask = set->cap - 1, i = s_hash(key) & mask;
    while (set->used[i])
        i = (i + 1) & mask;
    memcpy(set->slots[i], key, 32);
    set->used[i] = 1;
    set->count++;
}

static int s_set_add(keyset_t *set, const uint8_t key[32])
{
    if (s_set_has(set, key))
        return 0;
    if ((set->count + 1) * 2 > set->cap) {
        keyset_t bigger = {0};
        bigger.cap = set->cap ? set->cap * 2 : 16;
        bigger.slots = calloc(bigger.cap, 32);
        bigger.used = calloc(bigger.cap, 1);
        if (!bigger.slots || !bigger.used) {
            free(bigger.slots);
            free(bigger.used);
            return NERVE_ENOMEM;
        }
        for (size_t i = 0; i < set->cap; i++)
            if (set->used[i])
                s_set_put(&bigger, set->slots[i]);
        free(set->slots);
        free(set->used);
        *set = bigger;
    }
    s_set_put(set, key);
    return 0;
}

static void s_set_free(keyset_t *set)
{
    free(set->slots);
    free(set->used);
    memset(set, 0, sizeof *set);
}

/*  The directories the handler watches, in the order of mtime[]. */
#define WATCHED 4
static const char *const s_watched[WATCHED] = {NULL, "accepted", "pending", "rejected"};

struct nerve_zap {
    nerve_security_t sec;
    bool curve;    /* false: an insecure handle, no thread */
    void *handler; /* REP on ZAP_ENDPOINT; the thread's once started */
    int wake[2];   /* a byte on wake[1] stops the thread */
    pthread_t thread;
    bool thread_started;
    bool counted;          /* in s_zap_running */
    pthread_rwlock_t lock; /* guards `admitted` */
    bool lock_ready;
    keyset_t admitted; /* accepted + local - rejected; written by the thread under lock */
    keyset_t rejected; /* thread only */
    keyset_t pending;  /* thread only */
    size_t pending_files;
    unsigned auto_accepted_run;
    struct timespec mtime[WATCHED];
    bool racy; /* an mtime was too recent to trust: look again */
    uint64_t next_check_ms, next_full_ms;
    uint64_t window_ms; /* start of the current one-second write window */
    unsigned window_writes;
    nerve_ratelimit_t rl_refused, rl_record, rl_file, rl_unsafe, rl_auto, rl_bad;
    _Atomic uint64_t generation;
    _Atomic uint64_t n_admitted, n_unknown, n_rejected, n_other, n_pending, n_auto, n_reloads,
        n_keys;
};

static void s_stat_dirs(nerve_zap_t *self, struct timespec out[WATCHED])
{
    for (int i = 0; i < WATCHED; i++) {
        char path[PATH_MAX];
        struct stat st;
        memset(&out[i], 0, sizeof out[i]);
        int n = s_watched[i] ? snprintf(path, sizeof path, "%s/%s", self->sec.keys, s_watched[i])
                             : snprintf(path, sizeof path, "%s", self->sec.keys);
        if (n > 0 && n < (int)sizeof path && stat(path, &st) == 0)
            out[i] = st.st_mtim;
    }
}

/*  Adds every readable <name>.pub of one directory to `set`. For the
    keys directory itself (local), only keypairs: a .pub with its .secret
    beside it. Returns 0 (a missing directory is empty) or NERVE_ENOMEM. */
static int s_read_dir(nerve_zap_t *self, const char *sub, keyset_t *set, size_t *count)
{
    char path[PATH_MAX];
    int n = sub ? snprintf(path, sizeof path, "%s/%s", self->sec.keys, sub)
                : snprintf(path, sizeof path, "%s", self->sec.keys);
    if (n < 0 || n >= (int)sizeof path)
        return 0;
    DIR *dir = opendir(path);
    if (!dir)
        return 0;
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(dir))) {
        if (!s_filter_pub(entry))
            continue;
        char file[PATH_MAX], why[512];
        uint8_t key[32];
        if (!sub) {
            char secret[NERVE_KEY_NAME_MAX + 16];
            struct stat st;
            size_t len = strlen(entry->d_name) - 4;
            snprintf(secret, sizeof secret, "%.*s.secret", (int)len, entry->d_name);
            if (fstatat(dirfd(dir), secret, &st, 0) != 0)
                continue;
        }
        if (snprintf(file, sizeof file, "%s/%s", path, entry->d_name) >= (int)sizeof file)
            continue;
        if (nerve_keys_load(file, key, NULL, why, sizeof why) != 0) {
            NERVE_LOG_RL(&self->rl_file, NERVE_LOG_WARN, LOG_ID, "ignoring key file: %s", why);
            continue;
        }
        rc = s_set_add(set, key);
        if (rc == 0 && count)
            (*count)++;
    }
    closedir(dir);
    return rc;
}

/*  Rebuilds the sets from the directories and swaps them in. When a
    directory has become writable by others, nobody is admitted until it
    is fixed. Returns 0 or NERVE_ENOMEM (the old sets stay). */
static int s_reload(nerve_zap_t *self)
{
    uint64_t now = nerve_clock_mono_ms();
    struct timespec seen[WATCHED];
    s_stat_dirs(self, seen); /* before reading: a change while we read shows next time */

    keyset_t accepted = {0}, rejected = {0}, pending = {0}, admitted = {0};
    size_t npending = 0;
    char why[512] = "";
    bool unsafe = false;
    for (int i = 0; i < WATCHED && !unsafe; i++) {
        char path[PATH_MAX];
        int n = s_watched[i] ? snprintf(path, sizeof path, "%s/%s", self->sec.keys, s_watched[i])
                             : snprintf(path, sizeof path, "%s", self->sec.keys);
        int rc = n > 0 && n < (int)sizeof path ? s_dir_safe(path, false, why, sizeof why) : 0;
        unsafe = rc == NERVE_EPERM;
    }
    int rc = 0;
    if (unsafe) {
        NERVE_LOG_RL(&self->rl_unsafe, NERVE_LOG_ERROR, LOG_ID,
                     "refusing every key until this is fixed: %s", why);
    } else {
        rc = s_read_dir(self, NULL, &accepted, NULL);
        if (rc == 0)
            rc = s_read_dir(self, "accepted", &accepted, NULL);
        if (rc == 0)
            rc = s_read_dir(self, "rejected", &rejected, NULL);
        if (rc == 0)
            rc = s_read_dir(self, "pending", &pending, &npending);
    }
    for (size_t i = 0; rc == 0 && i < accepted.cap; i++)
        if (accepted.used[i] && !s_set_has(&rejected, accepted.slots[i]))
            rc = s_set_add(&admitted, accepted.slots[i]);
    s_set_free(&accepted);
    if (rc != 0) {
        s_set_free(&rejected);
        s_set_free(&pending);
        s_set_free(&admitted);
        NERVE_ERROR(LOG_ID, "out of memory reloading keys; keeping the previous ones");
        return rc;
    }
    bool shrunk = false;
    for (size_t i = 0; !shrunk && i < self->admitted.cap; i++)
        shrunk = self->admitted.used[i] && !s_set_has(&admitted, self->admitted.slots[i]);

    pthread_rwlock_wrlock(&self->lock);
    keyset_t old = self->admitted;
    self->admitted = admitted;
    pthread_rwlock_unlock(&self->lock);
    s_set_free(&old);
    if (!unsafe) {
        s_set_free(&self->rejected);
        self->rejected = rejected;
        s_set_free(&self->pending);
        self->pending = pending;
        self->pending_files = npending;
    }
    if (shrunk)
        atomic_fetch_add(&self->generation, 1);
    atomic_store(&self->n_keys, self->admitted.count);
    atomic_fetch_add(&self->n_reloads, 1);

    /*  Directory mtimes move in coarse ticks: a second change within the
        same tick as the one we just read would leave the mtime as it is.
        While an mtime is that fresh, look again next time. */
    memcpy(self->mtime, seen, sizeof seen);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    self->racy = false;
    for (int i = 0; i < WATCHED; i++)
        if (seen[i].tv_sec + 2 >= wall.tv_sec)
            self->racy = true;
    self->next_full_ms = now + FULL_MS;
    return 0;
}

static void s_check(nerve_zap_t *self)
{
    uint64_t now = nerve_clock_mono_ms();
    if (now < self->next_check_ms)
        return;
    self->next_check_ms = now + CHECK_MS;
    struct timespec seen[WATCHED];
    s_stat_dirs(self, seen);
    bool changed = self->racy || now >= self->next_full_ms;
    for (int i = 0; i < WATCHED && !changed; i++)
        changed =
            seen[i].tv_sec != self->mtime[i].tv_sec || seen[i].tv_nsec != self->mtime[i].tv_nsec;
    if (changed)
        s_reload(self);
}

/*  Writes key into <keys>/<sub>/<hex>.pub, within the write bounds. */
static int s_record(nerve_zap_t *self, const char *sub, const uint8_t key[32], const char *address,
                    char name[PENDING_HEX + 1])
{
    uint64_t now = nerve_clock_mono_ms();
    if (now - self->window_ms >= 1000) {
        self->window_ms = now;
        self->window_writes = 0;
    }
    size_t total = strcmp(sub, "pending") == 0 ? self->pending_files : self->auto_accepted_run;
    if (self->window_writes >= RECORD_PER_SEC || total >= RECORD_MAX) {
        NERVE_LOG_RL(&self->rl_record, NERVE_LOG_WARN, LOG_ID,
                     "not recording more unknown keys in %s/%s/ (%s)", self->sec.keys, sub,
                     total >= RECORD_MAX ? "it holds "
                                           "1000 keys already"
                                         : "more than 5 a second");
        return NERVE_EFULL;
    }
    self->window_writes++;
    s_pending_name(key, name);
    char path[PATH_MAX], when[32], why[512];
    if (s_path(path, sizeof path, self->sec.keys, sub, name, ".pub") != 0)
        return NERVE_ERANGE;
    s_now_text(when, sizeof when);
    const char *meta[] = {"name", name, "address", address, "first-seen", when, NULL};
    int rc = s_write_public(path, key, meta, why, sizeof why);
    if (rc != 0)
        NERVE_LOG_RL(&self->rl_record, NERVE_LOG_WARN, LOG_ID, "cannot record key: %s", why);
    return rc;
}

typedef struct verdict {
    const char *status; /* "200", "400", "500" */
    const char *text;
    char user_id[NERVE_Z85_KEY_LEN + 1];
} verdict_t;

static void s_decide(nerve_zap_t *self, const uint8_t key[32], const char *address, verdict_t *v)
{
    char z85[NERVE_Z85_KEY_LEN + 1], name[PENDING_HEX + 1];
    s_z85(z85, key);
    if (s_set_has(&self->rejected, key)) {
        atomic_fetch_add(&self->n_rejected, 1);
        NERVE_LOG_RL(&self->rl_refused, NERVE_LOG_WARN, LOG_ID, "refused rejected key %s from %s",
                     z85, address);
        v->status = "400";
        v->text = "key rejected";
        return;
    }
    if (s_set_has(&self->admitted, key)) {
        atomic_fetch_add(&self->n_admitted, 1);
        v->status = "200";
        v->text = "OK";
        memcpy(v->user_id, z85, sizeof z85);
        return;
    }
    if (self->sec.auto_accept && s_record(self, "accepted", key, address, name) == 0) {
        pthread_rwlock_wrlock(&self->lock);
        int rc = s_set_add(&self->admitted, key);
        pthread_rwlock_unlock(&self->lock);
        if (rc == 0) {
            self->auto_accepted_run++;
            atomic_fetch_add(&self->n_auto, 1);
            atomic_fetch_add(&self->n_admitted, 1);
            atomic_store(&self->n_keys, self->admitted.count);
            NERVE_LOG_RL(&self->rl_auto, NERVE_LOG_WARN, LOG_ID,
                         "auto_accept: let in UNKNOWN key %s from %s, recorded as "
                         "%s/accepted/%s.pub",
                         z85, address, self->sec.keys, name);
            v->status = "200";
            v->text = "OK";
            memcpy(v->user_id, z85, sizeof z85);
            return;
        }
    }
    atomic_fetch_add(&self->n_unknown, 1);
    bool recorded = false;
    if (!self->sec.auto_accept && !s_set_has(&self->pending, key) &&
        s_record(self, "pending", key, address, name) == 0 && s_set_add(&self->pending, key) == 0) {
        self->pending_files++;
        atomic_fetch_add(&self->n_pending, 1);
        recorded = true;
    }
    if (recorded)
        NERVE_LOG_RL(&self->rl_refused, NERVE_LOG_WARN, LOG_ID,
                     "refused unknown key %s from %s; recorded as %s/pending/%s.pub "
                     "(`nerve keys accept %s` lets it in)",
                     z85, address, self->sec.keys, name, name);
    else
        NERVE_LOG_RL(&self->rl_refused, NERVE_LOG_WARN, LOG_ID, "refused unknown key %s from %s",
                     z85, address);
    v->status = "400";
    v->text = "unknown key";
}

static bool s_frame_is(zmq_msg_t *msg, const char *text)
{
    size_t len = strlen(text);
    return zmq_msg_size(msg) == len && memcmp(zmq_msg_data(msg), text, len) == 0;
}

static int s_send(void *socket, const void *data, size_t len, bool more)
{
    int rc;
    while ((rc = zmq_send(socket, data, len, more ? ZMQ_SNDMORE : 0)) < 0 && zmq_errno() == EINTR)
        ;
    return rc < 0 ? -1 : 0;
}

/*  Answers one request. Returns -1 when the context is going away. */
static int s_zap_handle(nerve_zap_t *self)
{
    zmq_msg_t part[ZAP_FRAMES_MAX];
    int n = 0;
    bool too_many = false, more = true;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        int rc;
        while ((rc = zmq_msg_recv(&msg, self->handler, 0)) < 0 && zmq_errno() == EINTR)
            ;
        if (rc < 0) {
            int e = zmq_errno();
            zmq_msg_close(&msg);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
            return e == ETERM ? -1 : 0;
        }
        more = zmq_msg_more(&msg);
        if (n < ZAP_FRAMES_MAX)
            part[n++] = msg;
        else {
            zmq_msg_close(&msg);
            too_many = true;
        }
    }
    verdict_t v = {"400", "", ""};
    if (too_many || n < 6 || !s_frame_is(&part[0], "1.0")) {
        atomic_fetch_add(&self->n_other, 1);
        NERVE_LOG_RL(&self->rl_bad, NERVE_LOG_WARN, LOG_ID, "malformed ZAP request (%d frames)", n);
        v.status = "500";
        v.text = "malformed ZAP request";
    } else if (!s_frame_is(&part[2], NERVE_ZAP_DOMAIN) || !s_frame_is(&part[5], "CURVE") ||
               n != 7 || zmq_msg_size(&part[6]) != 32) {
        atomic_fetch_add(&self->n_other, 1);
        NERVE_LOG_RL(&self->rl_bad, NERVE_LOG_WARN, LOG_ID,
                     "refused a connection that is not CURVE in domain '" NERVE_ZAP_DOMAIN "'");
        v.text = "CURVE in domain " NERVE_ZAP_DOMAIN " required";
    } else {
        char address[64];
        s_clean(address, sizeof address, zmq_msg_data(&part[3]), zmq_msg_size(&part[3]));
        s_decide(self, zmq_msg_data(&part[6]), address[0] ? address : "a local socket", &v);
    }
    int rc = s_send(self->handler, "1.0", 3, true);
    if (rc == 0)
        rc = s_send(self->handler, n >= 2 ? zmq_msg_data(&part[1]) : "",
                    n >= 2 ? zmq_msg_size(&part[1]) : 0, true);
    if (rc == 0)
        rc = s_send(self->handler, v.status, 3, true);
    if (rc == 0)
        rc = s_send(self->handler, v.text, strlen(v.text), true);
    if (rc == 0)
        rc = s_send(self->handler, v.user_id, strlen(v.user_id), true);
    if (rc == 0)
        rc = s_send(self->handler, "", 0, false);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    return rc < 0 && zmq_errno() == ETERM ? -1 : 0;
}

static void *s_zap_thread(void *arg)
{
    nerve_zap_t *self = arg;
    zmq_pollitem_t items[2] = {{self->handler, 0, ZMQ_POLLIN, 0},
                               {NULL, self->wake[0], ZMQ_POLLIN, 0}};
    while (true) {
        uint64_t now = nerve_clock_mono_ms();
        long timeout = self->next_check_ms > now ? (long)(self->next_check_ms - now) : 0;
        int rc = zmq_poll(items, 2, timeout);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0 || (items[1].revents & ZMQ_POLLIN))
            break;
        if ((items[0].revents & ZMQ_POLLIN) && s_zap_handle(self) < 0)
            break;
        s_check(self);
    }
    zmq_close(self->handler);
    self->handler = NULL;
    return NULL;
}

nerve_zap_t *nerve_zap_start(void *zmq_ctx, const nerve_security_t *sec, char *err, size_t errsize)
{
    if (!zmq_ctx || !sec) {
        s_err(err, errsize, "no ZeroMQ context or security settings given");
        return NULL;
    }
    pthread_once(&s_seed_once, s_seed_init);
    nerve_zap_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_err(err, errsize, "out of memory");
        return NULL;
    }
    self->sec = *sec;
    self->wake[0] = self->wake[1] = -1;
    const nerve_ratelimit_t rl = NERVE_RATELIMIT_INIT(1000);
    self->rl_refused = self->rl_record = self->rl_auto = self->rl_bad = rl;
    const nerve_ratelimit_t rl_slow = NERVE_RATELIMIT_INIT(10000);
    self->rl_file = self->rl_unsafe = rl_slow;
    if (sec->insecure)
        return self;
    self->curve = true;
    if (pthread_rwlock_init(&self->lock, NULL) != 0) {
        s_err(err, errsize, "cannot make a lock");
        goto fail;
    }
    self->lock_ready = true;
    if (s_dirs_prepare(sec->keys, err, errsize) != 0)
        goto fail;
    if (s_reload(self) != 0) {
        s_err(err, errsize, "out of memory loading %s", sec->keys);
        goto fail;
    }
    self->next_check_ms = nerve_clock_mono_ms() + CHECK_MS;
    if (pipe2(self->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        s_err(err, errsize, "pipe: %s", strerror(errno));
        goto fail;
    }
    self->handler = zmq_socket(zmq_ctx, ZMQ_REP);
    int zero = 0;
    if (!self->handler || zmq_setsockopt(self->handler, ZMQ_LINGER, &zero, sizeof zero) != 0) {
        s_err(err, errsize, "cannot make the ZAP socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_bind(self->handler, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        s_err(err, errsize, "cannot bind %s: %s", ZAP_ENDPOINT,
              e == EADDRINUSE ? "this context already has a ZAP handler (one per context)"
                              : zmq_strerror(e));
        goto fail;
    }
    /*  Signals belong to the daemon's main thread, not to ours. */
    int rc = nerve_daemon_thread(&self->thread, s_zap_thread, self);
    if (rc != 0) {
        s_err(err, errsize, "cannot start the ZAP thread: %s", strerror(rc));
        goto fail;
    }
    self->thread_started = true;
    self->counted = true;
    atomic_fetch_add(&s_zap_running, 1);
    NERVE_DEBUG(LOG_ID, "ZAP handler up: %zu keys admitted from %s", self->admitted.count,
                sec->keys);
    return self;
fail:
    nerve_zap_stop(&self);
    return NULL;
}

bool nerve_zap_allowed(nerve_zap_t *self, const char *user_id)
{
    if (!self)
        return false;
    if (!self->curve)
        return true;
    uint8_t key[32];
    if (!s_z85_decode(key, user_id))
        return false;
    pthread_rwlock_rdlock(&self->lock);
    bool ok = s_set_has(&self->admitted, key);
    pthread_rwlock_unlock(&self->lock);
    return ok;
}

uint64_t nerve_zap_generation(nerve_zap_t *self)
{
    return self ? atomic_load(&self->generation) : 0;
}

void nerve_zap_stats(nerve_zap_t *self, nerve_zap_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->admitted = atomic_load(&self->n_admitted);
    out->refused_unknown = atomic_load(&self->n_unknown);
    out->refused_rejected = atomic_load(&self->n_rejected);
    out->refused_other = atomic_load(&self->n_other);
    out->recorded_pending = atomic_load(&self->n_pending);
    out->auto_accepted = atomic_load(&self->n_auto);
    out->reloads = atomic_load(&self->n_reloads);
    out->keys = atomic_load(&self->n_keys);
}

void nerve_zap_stop(nerve_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_zap_t *self = *self_p;
    if (self->thread_started) {
        ssize_t w;
        while ((w = write(self->wake[1], "x", 1)) < 0 && errno == EINTR)
            ;
        pthread_join(self->thread, NULL);
    } else if (self->handler) {
        zmq_close(self->handler);
    }
    if (self->counted)
        atomic_fetch_sub(&s_zap_running, 1);
    for (int i = 0; i < 2; i++)
        if (self->wake[i] >= 0)
            close(self->wake[i]);
    if (self->lock_ready)
        pthread_rwlock_destroy(&self->lock);
    s_set_free(&self->admitted);
    s_set_free(&self->rejected);
    s_set_free(&self->pending);
    free(self);
    *self_p = NULL;
}
