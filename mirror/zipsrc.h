/*
 * Private to mirror/: a release archive as a seekable libzip source backed
 * by HTTP Range requests (zipsrc.c), for upstream.c. Reading a member costs
 * the central directory, its local header and its own bytes, not the
 * archive. An upstream without range support, or a .tar.gz release, is
 * read whole once into the store's tmp folder. It sees common/ and the store's tmp files only.
 */
#ifndef MIRROR_ZIPSRC_H
#define MIRROR_ZIPSRC_H

#include <zip.h>

#include "mirror/mirror.h"

struct mir_zipsrc;

struct mir_zipsrc_config {
	const struct hc_http_config *http;
	const char *url;                /* the release archive */
	const char *token;              /* bearer token, NULL: none; only ever sent to
	                                   url's own host, never after a redirect elsewhere */
	uint64_t max_bytes;             /* a larger archive is refused */
	struct mir_store *store;        /* tmp folder for an archive read whole */
	volatile int *cancel;           /* non-zero ends every transfer */
	int tar;                        /* a .tar.gz (mir_tarsrc_is_tar): read whole
	                                   and rewritten as a ZIP (tarsrc.c) */
};

/* Opens the archive at cfg->url (cfg must outlive the source). Follows
 * redirects (a bounded number). 0, or HC_ENOTFOUND (upstream has no such
 * release), HC_EUNAVAIL (unreachable, redirect loop, rate limited: then
 * *retry_s > 0 is how long upstream asked us to wait), HC_EDATA (not a
 * ZIP, cut short, too large). */
int mir_zipsrc_open(const struct mir_zipsrc_config *cfg, zip_t **za, struct mir_zipsrc **src,
                    int *retry_s, struct hc_err *err);
/* GETs the small document at cfg->url whole into out (a release's
 * manifest), with the same redirects, token rule and rate-limit reading as
 * the archive. 0, HC_ENOTFOUND, HC_EUNAVAIL (*retry_s as above), or
 * out's HC_EDATA when larger than its cap. */
int mir_zipsrc_fetch(const struct mir_zipsrc_config *cfg, struct hc_buf *out, int *retry_s,
                     struct hc_err *err);
/* Why the last read failed, "" when none did: libzip only says "read error". */
const char *mir_zipsrc_why(const struct mir_zipsrc *src);
/* Archive bytes received from upstream so far. */
uint64_t mir_zipsrc_fetched(const struct mir_zipsrc *src);
/* 1 when read by ranges, 0 when read whole. */
int mir_zipsrc_ranged(const struct mir_zipsrc *src);
/* The URL the archive was read from at last (after redirects), for logs. */
const char *mir_zipsrc_url(const struct mir_zipsrc *src);
/* Frees the cached block (up to 8 MiB) of an archive kept open: libzip
 * holds the directory itself; later reads fetch again. NULL is a no-op. */
void mir_zipsrc_trim(struct mir_zipsrc *src);
/* Discards za and frees src; removes a whole copy. NULLs are no-ops. */
void mir_zipsrc_close(zip_t *za, struct mir_zipsrc *src);

#endif
