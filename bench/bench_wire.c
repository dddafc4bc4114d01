/*  bench_wire.c — what decoding one event costs, beside msgpack-c alone.

    Every event the manager accepts goes through nerve_wire_decode_event():
    the tag check, a validating scan of the payload, a copy into the
    decoder's buffer, the object tree, and the header fields. This times it
    on the manager bench's event (tag /bench/metric<i>/host<h>, data
    {value: <double>}) and on a larger one (data: a map of 20 fields of
    mixed types, as a beacon with a few probes sends), and, in the same
    run, msgpack-c's msgpack_unpack() of the same payload into a reused
    zone — the least any msgpack decoder must do, without any checking.

    It also times nerve_wire_encode_reaction() on the reaction the manager
    bench's rule sends (args {message: "metric17 on host417: 73.5"}), the
    engine's cost per reaction before zmq_send().

    Usage: bench_wire [decodes per run], default 2,000,000; best of 7 runs.
*/
#include <nerve/log.h>
#include <nerve/wire.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RUNS 7

typedef struct {
    const char *name;
    char tag[NERVE_TAG_MAX + 1];
    msgpack_sbuffer payload;
} sample_t;

static void s_sample(sample_t *s, const char *name, const char *tag, bool large)
{
    s->name = name;
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    if (!large) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "value", 5);
        msgpack_pack_double(&pk, 73.5);
    } else {
        msgpack_pack_map(&pk, 20);
        for (int i = 0; i < 20; i++) {
            char key[16];
            int n = snprintf(key, sizeof key, "field%d", i);
            msgpack_pack_str_with_body(&pk, key, (size_t)n);
            switch (i % 4) {
            case 0: msgpack_pack_double(&pk, i * 1.25); break;
            case 1: msgpack_pack_int64(&pk, -i * 1000); break;
            case 2: msgpack_pack_str_with_body(&pk, "/dev/nvme0n1p2", 14); break;
            default: msgpack_pack_true(&pk); break;
            }
        }
    }
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.tag, sizeof ev.tag, "%s", tag);
    ev.tag_len = strlen(ev.tag);
    nerve_wire_new_id(ev.id);
    ev.ts = 1763800000000000000ull;
    snprintf(ev.host, sizeof ev.host, "host417");
    ev.data_raw = data.data;
    ev.data_raw_len = data.size;
    msgpack_sbuffer_init(&s->payload);
    if (nerve_wire_encode_event(&ev, &s->payload) != 0) {
        fprintf(stderr, "bench_wire: cannot encode the %s event\n", name);
        exit(1);
    }
    msgpack_sbuffer_destroy(&data);
}

static double s_decode_ns(nerve_wire_decoder_t *dec, const sample_t *s, size_t n)
{
    nerve_frame_t frames[2] = {{s->tag, strlen(s->tag)}, {s->payload.data, s->payload.size}};
    nerve_event_t ev;
    uint64_t t0 = nerve_clock_mono_ns();
    for (size_t i = 0; i < n; i++)
        if (nerve_wire_decode_event(dec, frames, 2, &ev) != NERVE_WIRE_OK) {
            fprintf(stderr, "bench_wire: the %s event does not decode\n", s->name);
            exit(1);
        }
    return (double)(nerve_clock_mono_ns() - t0) / (double)n;
}

static double s_unpack_ns(msgpack_zone *zone, const sample_t *s, size_t n)
{
    msgpack_object root;
    uint64_t t0 = nerve_clock_mono_ns();
    for (size_t i = 0; i < n; i++) {
        msgpack_zone_clear(zone);
        size_t off = 0;
        if (msgpack_unpack(s->payload.data, s->payload.size, &off, zone, &root) !=
            MSGPACK_UNPACK_SUCCESS) {
            fprintf(stderr, "bench_wire: msgpack_unpack failed\n");
            exit(1);
        }
    }
    return (double)(nerve_clock_mono_ns() - t0) / (double)n;
}

static double s_encode_ns(size_t n)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object_kv *kv = msgpack_zone_malloc(&zone, sizeof *kv);
    static const char key[] = "message", text[] = "metric17 on host417: 73.5";
    kv->key = (msgpack_object){.type = MSGPACK_OBJECT_STR,
                               .via.str = {.size = sizeof key - 1, .ptr = key}};
    kv->val = (msgpack_object){.type = MSGPACK_OBJECT_STR,
                               .via.str = {.size = sizeof text - 1, .ptr = text}};
    nerve_reaction_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.topic, sizeof r.topic, "@group/bench/");
    snprintf(r.fn, sizeof r.fn, "reactions.log.write");
    snprintf(r.rule, sizeof r.rule, "metric17_avg");
    r.args = (msgpack_object){.type = MSGPACK_OBJECT_MAP, .via.map = {.size = 1, .ptr = kv}};
    snprintf(r.event.tag, sizeof r.event.tag, "/bench/metric17/host417");
    snprintf(r.event.host, sizeof r.event.host, "host417");
    r.ts = 1763800000000000000ull;
    r.deadline = r.ts + 60000000000ull;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    uint64_t t0 = nerve_clock_mono_ns();
    for (size_t i = 0; i < n; i++)
        if (nerve_wire_encode_reaction(&r, &buf) != 0) {
            fprintf(stderr, "bench_wire: the reaction does not encode\n");
            exit(1);
        }
    double ns = (double)(nerve_clock_mono_ns() - t0) / (double)n;
    msgpack_sbuffer_destroy(&buf);
    msgpack_zone_destroy(&zone);
    return ns;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    if (n == 0)
        n = 2000000;
    sample_t samples[2];
    s_sample(&samples[0], "manager bench", "/bench/metric17/host417", false);
    s_sample(&samples[1], "20 fields", "/client/probes/web-0042.example.com", true);
    nerve_wire_decoder_t *dec = nerve_wire_decoder_new();
    msgpack_zone zone;
    if (!dec || !msgpack_zone_init(&zone, 64 * 1024))
        return 1;

    printf("wire: event decode, best of %d runs of %zu\n", S_RUNS, n);
    for (int k = 0; k < 2; k++) {
        double best_dec = 1e30, best_raw = 1e30;
        for (int r = 0; r < S_RUNS; r++) { /* alternate, so both see the same drift */
            double d = s_decode_ns(dec, &samples[k], n), u = s_unpack_ns(&zone, &samples[k], n);
            best_dec = d < best_dec ? d : best_dec;
            best_raw = u < best_raw ? u : best_raw;
        }
        printf("  %-14s %3zu-byte payload: nerve_wire_decode_event %6.1f ns, "
               "msgpack_unpack alone %6.1f ns (%.2fx)\n",
               samples[k].name, samples[k].payload.size, best_dec, best_raw, best_dec / best_raw);
    }
    double best_enc = 1e30;
    for (int r = 0; r < S_RUNS; r++) {
        double e = s_encode_ns(n);
        best_enc = e < best_enc ? e : best_enc;
    }
    printf("  reaction encode (manager bench's):  nerve_wire_encode_reaction %6.1f ns\n",
           best_enc);
    for (int k = 0; k < 2; k++)
        msgpack_sbuffer_destroy(&samples[k].payload);
    msgpack_zone_destroy(&zone);
    nerve_wire_decoder_destroy(&dec);
    return 0;
}
