/*  test_beacond_config.c — nerve-beacond's config file
    (beacons/beacond/config.c): what fuzz_conf found in it.

    Each test writes a config into a scratch directory, loads it over the
    defaults and checks what came out or the exact error and its place.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nerve/error.h>

#include "../../beacons/beacond/config.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/nerve-test-beacond-config.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/beacond.yaml", f->dir);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/*  Writes `len` bytes of text (NULs allowed) and loads it over the
    defaults into cfg. Returns what beacond_config_load returned. */
static int s_load(fixture_t *f, const char *text, size_t len, beacond_config_t *cfg,
                  nerve_conf_error_t *err)
{
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(beacond_config_defaults(cfg), 0);
    return beacond_config_load(cfg, f->path, err);
}

/*  Found by fuzz_conf: a quoted key "fn\0x" was taken for fn by strcmp
    and dropped from the probe's params, though nerve_conf_get (by length)
    does not find it as fn. Every key is beacond's own or a param. */
static void test_beacond_config_key_that_only_starts_like_fn_is_a_param(void **state)
{
    fixture_t *f = *state;
    static const char text[] = "beacons:\n"
                               "  - fn: beacons.load.avg\n"
                               "    \"fn\\0x\": 1\n"
                               "    proc: /x\n";
    beacond_config_t cfg;
    nerve_conf_error_t err;
    if (s_load(f, text, sizeof text - 1, &cfg, &err) != 0)
        fail_msg("load: %s", err.message);
    assert_int_equal(cfg.nbeacons, 1);
    assert_string_equal(cfg.beacons[0].fn, "beacons.load.avg");
    const msgpack_object *params = &cfg.beacons[0].params;
    assert_int_equal(params->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(params->via.map.size, 2);
    const msgpack_object *key = &params->via.map.ptr[0].key;
    assert_int_equal(key->type, MSGPACK_OBJECT_STR);
    assert_int_equal(key->via.str.size, 4);
    assert_memory_equal(key->via.str.ptr, "fn\0x", 4);
    assert_int_equal(params->via.map.ptr[0].val.via.u64, 1);
    assert_int_equal(params->via.map.ptr[1].key.via.str.size, 4);
    assert_memory_equal(params->via.map.ptr[1].key.via.str.ptr, "proc", 4);
    beacond_config_free(&cfg);
}

/*  Found by fuzz_conf: `host: "u1\0x"` was read as "u1", silently. */
static void test_beacond_config_string_with_a_nul_is_refused_at_its_place(void **state)
{
    fixture_t *f = *state;
    static const char text[] = "interval: 5s\n"
                               "host: \"u1\\0x\"\n";
    beacond_config_t cfg;
    nerve_conf_error_t err;
    assert_int_equal(s_load(f, text, sizeof text - 1, &cfg, &err), NERVE_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:2:7: expected a string without NUL characters, got 'u1?x'",
             f->path);
    assert_string_equal(err.message, want);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 7);
    beacond_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_beacond_config_key_that_only_starts_like_fn_is_a_param,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(
            test_beacond_config_string_with_a_nul_is_refused_at_its_place, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
