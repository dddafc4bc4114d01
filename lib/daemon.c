/*  daemon.c — sd_notify's READY=1 without libsystemd, and the daemons'
    shared first pass over their flags (see daemon.h).

    The notify protocol is a stable, documented datagram to a unix socket;
    an abstract socket name starts with '@'.
*/
#include <nerve/daemon.h>
#include <nerve/error.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int s_notify(const char *message)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return NERVE_EINVAL;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NERVE_EIO;
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t n = sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *)&addr,
                       alen);
    close(fd);
    return n < 0 ? NERVE_EIO : 0;
}

int nerve_daemon_ready(const char *status)
{
    char message[512];
    if (status)
        snprintf(message, sizeof message, "READY=1\nSTATUS=%s", status);
    else
        snprintf(message, sizeof message, "READY=1");
    return s_notify(message);
}

int nerve_daemon_stopping(void)
{
    return s_notify("STOPPING=1");
}

int nerve_daemon_first_pass(int argc, char **argv, const struct option *opts, const char *name,
                            void (*usage)(FILE *out), const char **config)
{
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        if (c == 'c') {
            *config = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c == 'V') {
            printf("%s %s\n", name, NERVE_VERSION);
            return 0;
        }
    }
    optind = 1;
    opterr = 1;
    return -1;
}
