/*  nerve-modload — resolve one dotted name through the real loader.

        nerve-modload DIR role.module.function

    Builds a module set searching DIR, resolves the name and prints what it
    found, one "key: value" per line (role, module, version, function,
    doc, file). Exits 0 on success, 1 with the loader's reason on stderr
    when the module is missing or refused, 2 on bad usage. The out-of-tree
    test uses it to load a module compiled against the installed headers
    and pkg-config file, exactly as an operator's module would be.
*/
#include <nerve/error.h>
#include <nerve/module.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nerve-modload DIR role.module.function\n");
        return 2;
    }
    const char *dirs[] = {argv[1]};
    nerve_modset_t *set = nerve_modset_new(dirs, 1);
    if (!set) {
        fprintf(stderr, "nerve-modload: cannot create a module set\n");
        return 1;
    }
    char err[2048];
    nerve_resolved_t r;
    int rc = nerve_modset_resolve(set, argv[2], &r, err, sizeof err);
    if (rc != NERVE_OK) {
        fprintf(stderr, "nerve-modload: %s (%s)\n", err, nerve_strerror(rc));
        nerve_modset_destroy(&set);
        return 1;
    }
    printf("role: %s\n", nerve_role_name(r.role));
    printf("module: %s\n", r.module->name);
    printf("version: %s\n", r.module->version);
    printf("function: %s\n", r.fn->name);
    printf("doc: %s\n", r.fn->doc);
    printf("file: %s\n", r.path);
    nerve_modset_destroy(&set);
    return 0;
}
