/*
 * The properties every YAML schema target checks, for support.h's targets
 * that load with hc_cfg_load_buffer: a refused document is named as
 * "NAME:line:col: ..." (the only other outcome is running out of memory),
 * and a loaded one dumps to YAML that loads back to the same dump.
 */
#ifndef FUZZ_LIB_YAML_H
#define FUZZ_LIB_YAML_H

#include <stddef.h>

#include "common/hc.h"

/* Aborts unless err is "name:LINE:COL: ..." or rc is HC_ENOMEM. */
void fz_check_config_error(int rc, const struct hc_err *err, const char *name);

/* Dumps obj with schema, loads the dump into fresh (zeroed, obj_size bytes)
 * over its defaults and aborts unless that loads and dumps the same. */
void fz_check_config_roundtrip(const struct hc_cfg_field *schema, const void *obj,
                               size_t obj_size);

#endif
