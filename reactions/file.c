/*  reactions/file.c — reactions.file: write a file on an actor, atomically.

        write   path: /etc/app/limits.conf   absolute, under allow.paths
                content: "…"                 the bytes (usually a template)
                mode: 0644 | "0640"          optional, default 0644

    The file is written to a temporary name in the same directory, fsync()ed,
    renamed over the target and the directory fsync()ed, so a reader sees
    the old file or the new one, never a part, and a crash leaves no torn
    file.

    The path must be absolute, have no "." or ".." segment, and name a
    file whose directory, once every symlink in it is resolved, lies under
    one of the actor's allow.paths. The directory is opened first and its
    real location read back from the open descriptor, and everything after
    that happens relative to that descriptor (openat, renameat): a symlink
    swapped in after the check cannot redirect the write. A target that is
    itself a symlink is refused, and so is anything but a regular file.

    mode is read as chmod reads it: octal digits, as a string ("0640",
    "640", "0o640") or as a YAML number written with octal digits (0644 or
    644 — YAML reads both as the integer 644). Setuid, setgid and sticky
    bits are refused. The new file belongs to the actor's user.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/module.h>

/*  Parses octal digits (1-4 of them, after an optional "0o"). */
static bool s_octal(const char *s, size_t n, unsigned *out)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 4)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return false;
        v = v * 8 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static int s_mode(nerve_reaction_call_t *call, mode_t *out)
{
    const msgpack_object *m = nerve_obj_get(call->args, "mode");
    unsigned v = 0644;
    const char *s;
    size_t n;
    if (m && nerve_obj_str(m, &s, &n)) {
        if (!s_octal(s, n, &v))
            return nerve_reaction_say(call, NERVE_EINVAL, "file.write: mode '%.*s' is not octal (e.g. 0644)",
                         (int)(n > 20 ? 20 : n), s);
    } else if (m && m->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        char digits[24];
        int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)m->via.u64);
        if (!s_octal(digits, (size_t)len, &v))
            return nerve_reaction_say(call, NERVE_EINVAL,
                         "file.write: mode %s is not written with octal digits (e.g. 0644)",
                         digits);
    } else if (m) {
        return nerve_reaction_say(call, NERVE_EINVAL, "file.write: mode must be octal, like 0644 or \"0640\"");
    }
    if (v & ~0777u)
        return nerve_reaction_say(call, NERVE_EPERM,
                     "file.write: mode %04o refused: setuid, setgid and sticky bits are not "
                     "allowed",
                     v);
    *out = (mode_t)v;
    return 0;
}

/*  True if the absolute path has an empty, "." or ".." segment. */
static bool s_bad_segment(const char *path)
{
    const char *p = path + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        if (!end)
            return false;
        p = end + 1;
    }
}

static int s_write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*  Writes content into a temporary file in dirfd and renames it over base.
    Returns 0 or -1 with errno; *step names what failed. */
static int s_replace(int dirfd, const char *base, const char *content, size_t len, mode_t mode,
                     const char **step)
{
    char tmp[64], hex[33];
    uint8_t rnd[NERVE_ID_SIZE];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 8; tries++) {
        nerve_wire_new_id(rnd);
        snprintf(tmp, sizeof tmp, ".nerve-write-%.16s.tmp", nerve_wire_id_hex(rnd, hex));
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        *step = "create a temporary file";
        return -1;
    }
    int err = 0;
    if (fchmod(fd, mode) != 0) {
        *step = "set the mode";
        err = errno;
    } else if (s_write_all(fd, content, len) != 0) {
        *step = "write";
        err = errno;
    } else if (fsync(fd) != 0) {
        *step = "fsync";
        err = errno;
    }
    if (close(fd) != 0 && !err) {
        *step = "close";
        err = errno;
    }
    if (!err && renameat(dirfd, tmp, dirfd, base) != 0) {
        *step = "rename";
        err = errno;
    }
    if (err) {
        unlinkat(dirfd, tmp, 0);
        errno = err;
        return -1;
    }
    fsync(dirfd); /* the rename itself must survive a crash */
    return 0;
}

static int s_write(nerve_reaction_call_t *call)
{
    const msgpack_object *p = nerve_obj_get(call->args, "path");
    const msgpack_object *c = nerve_obj_get(call->args, "content");
    const char *path_s, *content;
    size_t path_n, content_n;
    if (!p || !nerve_obj_str(p, &path_s, &path_n))
        return nerve_reaction_say(call, NERVE_EINVAL, "file.write needs 'path' (an absolute file path)");
    if (c && c->type == MSGPACK_OBJECT_BIN) {
        content = c->via.bin.ptr;
        content_n = c->via.bin.size;
    } else if (!c || !nerve_obj_str(c, &content, &content_n)) {
        return nerve_reaction_say(call, NERVE_EINVAL, "file.write needs 'content' (a string)");
    }
    mode_t mode = 0644;
    int rc = s_mode(call, &mode);
    if (rc != 0)
        return rc;
    if (path_n == 0 || path_n >= PATH_MAX || memchr(path_s, '\0', path_n) || path_s[0] != '/')
        return nerve_reaction_say(call, NERVE_EPERM, "not allowed: path '%.*s' is not an absolute path",
                     (int)(path_n > 200 ? 200 : path_n), path_s);
    char path[PATH_MAX];
    memcpy(path, path_s, path_n);
    path[path_n] = '\0';
    for (size_t i = 0; i < path_n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return nerve_reaction_say(call, NERVE_EPERM,
                         "not allowed: path has a control character at byte %zu; nothing was "
                         "written",
                         i);
    if (s_bad_segment(path))
        return nerve_reaction_say(call, NERVE_EPERM,
                     "not allowed: path '%.200s' has an empty, '.' or '..' segment; nothing "
                     "was written",
                     path);
    char *slash = strrchr(path, '/');
    const char *base = slash + 1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);

    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return nerve_reaction_say(call, NERVE_EIO, "file.write: cannot open directory %.200s: %s", dir,
                     strerror(errno));
    /*  Where the directory really is, from the descriptor everything below
        uses: that is what the policy must allow. */
    char link[64], real[PATH_MAX], target[PATH_MAX + NAME_MAX + 2];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t rn = readlink(link, real, sizeof real - 1);
    if (rn <= 0) {
        close(dirfd);
        return nerve_reaction_say(call, NERVE_EIO, "file.write: cannot resolve %.200s: %s", dir,
                     strerror(errno));
    }
    real[rn] = '\0';
    snprintf(target, sizeof target, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    if (!NERVE_API_HAS(call->api, allowed) || call->api->allowed(call->host, "paths", target) != 0) {
        close(dirfd);
        if (strncmp(target, path, sizeof target) != 0)
            return nerve_reaction_say(call, NERVE_EPERM,
                         "not allowed: '%.200s' (really %.200s) is not under this actor's "
                         "allow.paths; nothing was written",
                         path, target);
        return nerve_reaction_say(call, NERVE_EPERM,
                     "not allowed: '%.200s' is not under this actor's allow.paths; nothing was "
                     "written",
                     path);
    }
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) {
            close(dirfd);
            return nerve_reaction_say(call, NERVE_EPERM,
                         "not allowed: '%.200s' is a symbolic link; nothing was written", path);
        }
        if (!S_ISREG(st.st_mode)) {
            close(dirfd);
            return nerve_reaction_say(call, NERVE_EINVAL, "file.write: '%.200s' is not a regular file", path);
        }
    }
    const char *step = "";
    if (s_replace(dirfd, base, content, content_n, mode, &step) != 0) {
        int err = errno;
        close(dirfd);
        return nerve_reaction_say(call, NERVE_EIO, "file.write %.200s: cannot %s: %s", path, step,
                     strerror(err));
    }
    close(dirfd);
    return nerve_reaction_say(call, 0, "wrote %zu bytes to %s (mode %04o)", content_n, target, (unsigned)mode);
}

static const nerve_module_fn_t s_functions[] = {
    {"write",
     {.reaction = s_write},
     "writes content to path (under allow.paths) atomically: temp file, fsync, rename",
     NULL,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "file", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
