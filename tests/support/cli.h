/* The lucidvk command as tests run it, and the files it leaves. */
#ifndef LVK_TEST_CLI_H
#define LVK_TEST_CLI_H

#include <stdbool.h>

#define LVK_TEST_LUCIDVK LVK_BINARY_DIR "/lucidvk"

/* Runs `ENV lucidvk ARGS` through the shell (env may be "", args are
 * quoted by the caller), its standard output into out_path and its
 * standard error into err_path (the same path: both into one file; NULL:
 * /dev/null). Returns its exit status, or -1 when it did not exit. */
int lvk_test_cli(const char *env, const char *args, const char *out_path, const char *err_path);

/* Whether something exists at path. */
bool lvk_test_exists(const char *path);

#endif
