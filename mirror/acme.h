/*
 * Private to mirror/: the ACME http-01 listener. A plain HTTP listener
 * (acme.listen, e.g. :80) that answers only
 * GET /.well-known/acme-challenge/{token} from the files an ACME client
 * (uacme's hook, packaging/acme/acme-hook) writes into acme.webroot, while
 * the main listener speaks HTTPS. Nothing else of that folder is served.
 */
#ifndef MIRROR_ACME_H
#define MIRROR_ACME_H

#include "mirror/mirror.h"

#define MIR_ACME_PREFIX "/.well-known/acme-challenge/"
/* RFC 8555 tokens are 43 base64url characters; leave room, refuse more. */
#define MIR_ACME_TOKEN_MAX 128
/* A key authorization is a token, a dot and a 43-byte thumbprint. */
#define MIR_ACME_FILE_MAX 1024

struct mir_acme;

/* 1 when token is 1 to MIR_ACME_TOKEN_MAX base64url characters. */
int mir_acme_token_valid(const char *token);

/* Listens on listen and serves challenge files from webroot. 0, HC_EUNAVAIL
 * (cannot listen) or HC_ENOMEM. On success logs the listening line. */
int mir_acme_start(const char *listen, const char *webroot, struct mir_acme **out,
                   struct hc_err *err);
/* Stops listening and frees. NULL is a no-op. */
void mir_acme_stop(struct mir_acme *a);

#endif
