/*  paths.c — default locations and private directories (see paths.h). */
#include <nerve/error.h>
#include <nerve/paths.h>

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NERVE_MODULE_SYSTEM_DIR
#define NERVE_MODULE_SYSTEM_DIR "/usr/local/lib/nerve/modules"
#endif

int nerve_home(char *buf, size_t size)
{
    const char *env = getenv("NERVE_HOME");
    int n;
    if (env && *env) {
        n = snprintf(buf, size, "%s", env);
    } else if (geteuid() == 0) {
        n = snprintf(buf, size, "/var/lib/nerve");
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(geteuid());
            home = pw ? pw->pw_dir : "/tmp";
        }
        n = snprintf(buf, size, "%s/.nerve", home);
    }
    return n < 0 || (size_t)n >= size ? NERVE_ERANGE : 0;
}

int nerve_home_path(const char *name, char *buf, size_t size)
{
    char home[PATH_MAX];
    if (nerve_home(home, sizeof home) != 0)
        return NERVE_ERANGE;
    int n = snprintf(buf, size, "%s/%s", home, name);
    return n < 0 || (size_t)n >= size ? NERVE_ERANGE : 0;
}

static int s_mkdirs(char *path, mode_t last_mode)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, last_mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int nerve_private_dir(const char *dir, char *err, size_t errsize)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return NERVE_ERANGE;
    if (s_mkdirs(path, 0700) != 0) {
        if (err)
            snprintf(err, errsize, "%s: cannot create: %s", dir, strerror(errno));
        return NERVE_EIO;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (err)
            snprintf(err, errsize, "%s: not a directory", dir);
        return NERVE_EIO;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        if (err)
            snprintf(err, errsize,
                     "%s: writable by group or others (mode %03o); refusing to put sockets "
                     "there (chmod 700 it)",
                     dir, (unsigned)(st.st_mode & 0777));
        return NERVE_EPERM;
    }
    return 0;
}

int nerve_ipc_dir_prepare(const char *endpoint, char *err, size_t errsize)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", endpoint + 6) >= (int)sizeof dir)
        return NERVE_ERANGE;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    return nerve_private_dir(dir, err, errsize);
}

static void s_add_dir(char **dirs, size_t max, size_t *n, const char *dir)
{
    if (*n >= max)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(dirs[i], dir) == 0)
            return;
    char *copy = strdup(dir);
    if (copy)
        dirs[(*n)++] = copy;
}

size_t nerve_default_module_dirs(char **dirs, size_t max)
{
    size_t n = 0;
    char path[PATH_MAX];
    if (nerve_home_path("modules", path, sizeof path) == 0)
        s_add_dir(dirs, max, &n, path);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            struct stat st;
            if (snprintf(path, sizeof path, "%s/modules", exe) < (int)sizeof path &&
                stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                s_add_dir(dirs, max, &n, path);
        }
    }
    s_add_dir(dirs, max, &n, NERVE_MODULE_SYSTEM_DIR);
    return n;
}

const char *nerve_hostname(void)
{
    static char name[256];
    if (!name[0]) {
        if (gethostname(name, sizeof name - 1) != 0 || !name[0])
            snprintf(name, sizeof name, "localhost");
        name[sizeof name - 1] = '\0';
    }
    return name;
}

bool nerve_name_ok(const char *name, size_t max)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':' || c == '@'))
            return false;
    }
    return true;
}
