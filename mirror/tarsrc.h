/*
 * Private to mirror/: a .tar.gz release turned into a ZIP that zipsrc.c
 * reads like any other (tarsrc.c). A gzip stream has no random access, so
 * the archive is received whole once; libarchive reads it and writes its
 * regular files, stored, into a ZIP, refusing what no release may hold.
 * It sees common/ only.
 */
#ifndef MIRROR_TARSRC_H
#define MIRROR_TARSRC_H

#include <stdint.h>

#include "common/hc.h"

/* 1 when url (its path, before any '?') names a .tar.gz or .tgz archive. */
int mir_tarsrc_is_tar(const char *url);
/* Reads the .tar.gz at tar_fd from its start and writes its members to
 * zip_fd as a ZIP. Directories are dropped, a leading "./" is removed.
 * Refuses (HC_EDATA, nothing usable in zip_fd) links and other non-regular
 * entries, more than max_bytes of content in all, content past
 * MIR_TARSRC_RATIO_MAX times the compressed size (a gzip bomb), and a
 * corrupt or truncated archive; names are checked later, by the ZIP's
 * reader. 0, HC_EDATA or HC_EIO (zip_fd could not be written). */
int mir_tarsrc_to_zip(int tar_fd, uint64_t tar_bytes, int zip_fd, uint64_t max_bytes,
                      struct hc_err *err);

/* A release compresses source and models, not repeated bytes: past this
 * ratio (once content is past MIR_TARSRC_RATIO_FLOOR) it is a bomb, as for
 * ZIP members in upstream.c. */
#define MIR_TARSRC_RATIO_MAX 200
#define MIR_TARSRC_RATIO_FLOOR (1024 * 1024)

#endif
