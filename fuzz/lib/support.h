/*
 * What the fuzz targets share. Each fuzz/NAME.c defines LLVMFuzzerTestOneInput
 * and becomes one target, linked with the files of fuzz/lib: with libFuzzer by
 * `make fuzz`, or with fuzz/lib/replay.c (its main) by
 * tests/static/fuzz_replay.sh.
 * A target aborts when a property it checks does not hold; the sanitizers
 * report the rest.
 */
#ifndef FUZZ_LIB_SUPPORT_H
#define FUZZ_LIB_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sends log lines nowhere: a target runs millions of inputs. Idempotent. */
void fz_quiet(void);

/* A folder private to this process ($TMPDIR/hydra-fuzz.XXXXXX, /tmp when
 * TMPDIR is unset), created on first use and removed with its contents at
 * a normal exit; a crash (and libFuzzer's own exit) leaves it, so fuzz/run.sh
 * and the replay point TMPDIR into their build folder. Aborts when it
 * cannot be made. */
const char *fz_scratch(void);

/* Writes size bytes to dir/name (replacing it). Aborts on failure: the
 * harness, not the input, is broken then. */
void fz_write(const char *dir, const char *name, const void *data, size_t size);

/* Removes dir/name if present. */
void fz_remove(const char *dir, const char *name);

/* A NUL-terminated copy of the input. Caller frees. Aborts when out of memory. */
char *fz_cstr(const uint8_t *data, size_t size);

/* Splits text at each sep into at most max fields (the last keeps the rest),
 * in place. Returns the number of fields; missing ones are set to "". */
size_t fz_split(char *text, char sep, char **fields, size_t max);

/* Aborts with a message naming the broken property. */
void fz_fail(const char *what) __attribute__((noreturn));

#endif
