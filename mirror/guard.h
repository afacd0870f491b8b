/*
 * Private to mirror/: the connection guard (guard.c). It keeps slow and
 * idle clients from holding every connection: a request head must arrive
 * whole within MIR_HEAD_TIMEOUT_S of the connection opening, and when
 * connections run short, a keep-alive connection waiting for its next head
 * gets no longer than that either. It sees connections only, never
 * requests or the store.
 */
#ifndef MIRROR_GUARD_H
#define MIRROR_GUARD_H

#include <microhttpd.h>

#include "mirror/mirror.h"

/* Seconds a client has to send a whole request head: heads are a few
 * hundred bytes, so even a slow link sends one in well under a second. */
#define MIR_HEAD_TIMEOUT_S 5

struct mir_guard;

/* Starts the guard's watch over at most max_connections connections.
 * 0 or HC_ENOMEM / HC_ESOFTWARE. */
int mir_guard_start(long long max_connections, struct mir_guard **out, struct hc_err *err);
/* Stop after the daemon has stopped. NULL is a no-op. */
void mir_guard_stop(struct mir_guard *g);
/* Connections open now, over every listener. */
long long mir_guard_open(struct mir_guard *g);
/* For MHD_OPTION_NOTIFY_CONNECTION, with the guard as cls. */
void mir_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* For MHD_OPTION_ACCEPT_POLICY, with the guard as cls: admits a new
 * connection while fewer than max_connections are open, over every
 * listener and pool thread. */
enum MHD_Result mir_guard_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* Counts a connection libmicrohttpd turned away itself (it says so only in
 * its log). NULL is a no-op. */
void mir_guard_count_refusal(struct mir_guard *g);
/* Connections turned away: by mir_guard_admit and as counted above. */
unsigned long long mir_guard_refused(struct mir_guard *g);
/* The head of a request on c has arrived whole. */
void mir_guard_head_done(struct MHD_Connection *c);
/* The response on c has ended: c now waits for its next head. */
void mir_guard_request_done(struct MHD_Connection *c);

#endif
