/*  fire.c — `nerve fire TAG key=value ...`: send one event by hand.

    The event is encoded by the wire codec like any beacon's (id and ts
    set here, host defaulting to this machine), and sent on a PUSH with
    ZMQ_IMMEDIATE: if no manager is connected within the timeout the send
    fails and the exit code says so (3), rather than the event waiting in
    a queue that dies with this process.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/paths.h>
#include <nerve/wire.h>

#include <stdlib.h>
#include <string.h>

enum { OPT_DATA = OPT_VERB, OPT_HOST, OPT_JSON };

static const cli_opt_t s_opts[] = {
    {"data", 'd', true, OPT_DATA},
    {"host", 0, true, OPT_HOST},
    {"json", 0, false, OPT_JSON},
    {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve fire TAG [key=value ...] [--data JSON] [--host H] [--events EP] [--json]\n"
            "\n"
            "Sends one event to the manager.\n"
            "\n"
            "  key=value        data fields: values parse as JSON when they can (n=5 is a\n"
            "                   number, ok=true a boolean), else strings; a.b=1 nests\n"
            "  -d, --data JSON  the data as JSON (key=value words override its fields)\n"
            "  --host H         the event's host (default: this machine's name)\n"
            "  --events EP      the manager's events endpoint (default tcp://127.0.0.1:7450)\n"
            "  --json           print the event sent as JSON\n"
            "\n"
            "Exit 2 for a bad tag or data; 3 when no manager took the event within the\n"
            "timeout (--timeout, default 5s).\n");
}

/*  {"tag", "host", "id" (hex), "data"}: the event as sent. */
static void s_print_sent(const char *tag, const char *host, const uint8_t id[NERVE_ID_SIZE],
                         const msgpack_object *data)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "tag", 3);
    msgpack_pack_str_with_body(&pk, tag, strlen(tag));
    msgpack_pack_str_with_body(&pk, "host", 4);
    msgpack_pack_str_with_body(&pk, host, strlen(host));
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_bin_with_body(&pk, id, NERVE_ID_SIZE);
    msgpack_pack_str_with_body(&pk, "data", 4);
    msgpack_pack_object(&pk, *data);
    cli_print_packed(stdout, &buf);
    msgpack_sbuffer_destroy(&buf);
}

int cli_fire(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve fire";
    const char *tag = NULL, *host = NULL, *data_json = NULL;
    bool json = false;
    const char **words = calloc((size_t)argc + 1, sizeof *words);
    size_t nwords = 0;
    if (!words) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return CLI_FAIL;
    }
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    int rc = CLI_OK;
    for (bool parsing = true; parsing && rc == CLI_OK;) {
        int id = cli_args_next(&it, s_opts, &value);
        switch (id) {
        case CLI_ARG_END: parsing = false; break;
        case CLI_ARG_ERR: rc = CLI_USAGE; break;
        case OPT_HELP: s_usage(stdout); rc = -1; break;
        case OPT_DATA: data_json = value; break;
        case OPT_HOST: host = value; break;
        case OPT_JSON: json = true; break;
        case CLI_ARG_POS:
            if (!tag)
                tag = value;
            else
                words[nwords++] = value;
            break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    cli_data_t *data = NULL;
    void *sock = NULL;
    char err[512];
    msgpack_object d;
    if (rc != CLI_OK)
        goto done;
    if (!tag) {
        rc = cli_usage_error(cmd, "which tag? as in: nerve fire /app/deploy/done version=1.4");
        goto done;
    }
    nerve_wire_reason_t why = nerve_wire_check_tag(tag, strlen(tag));
    if (why != NERVE_WIRE_OK) {
        rc = cli_usage_error(cmd, "invalid tag '%s' (%s): a tag starts with '/', is 1 to 255 "
                                  "bytes of UTF-8, as in /app/deploy/done",
                             tag, nerve_wire_reason_name(why));
        goto done;
    }
    if (!host)
        host = nerve_hostname();
    if (!host[0] || strlen(host) > NERVE_HOST_MAX) {
        rc = cli_usage_error(cmd, "--host wants 1 to %d bytes", NERVE_HOST_MAX);
        goto done;
    }
    if (!(data = cli_data_new())) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        rc = CLI_FAIL;
        goto done;
    }
    if (data_json && cli_data_set_json(data, data_json, strlen(data_json), err, sizeof err) != 0) {
        rc = cli_usage_error(cmd, "--data is not JSON: %s", err);
        goto done;
    }
    for (size_t i = 0; i < nwords; i++) {
        if (cli_data_set_kv(data, words[i], err, sizeof err) != 0) {
            rc = cli_usage_error(cmd, "%s", err);
            goto done;
        }
    }
    int derr = cli_data_get(data, &d);
    if (derr != 0) {
        rc = cli_data_error(cmd, derr);
        goto done;
    }
    if ((rc = cli_resolve(cli)) != CLI_OK)
        goto done;
    if (!(sock = cli_events_socket(cli))) {
        rc = CLI_FAIL;
        goto done;
    }
    uint8_t id[NERVE_ID_SIZE];
    rc = cli_send_event(cli, sock, tag, host, &d, 0, id);
    if (rc == CLI_OK && json)
        s_print_sent(tag, host, id, &d);
    else if (rc == CLI_OK) {
        char hex[33];
        printf("fired %s from %s (id %s)\n", tag, host, nerve_wire_id_hex(id, hex));
    }
done:
    cli_events_close(cli, &sock);
    cli_data_destroy(&data);
    free(words);
    return rc < 0 ? CLI_OK : rc;
}
