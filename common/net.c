/* Listen addresses of the servers: "127.0.0.1:8080", "[::1]:8080", ":8080". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hc.h"

int
hc_parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                struct hc_err *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_text;
	size_t host_len;
	long long port;

	if (text == NULL || *text == '\0')
		return hc_err_set(err, HC_EDATA, "no listen address");
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return hc_err_set(err, HC_EDATA, "listen %s: expected [ipv6]:port", text);
		host_len = (size_t)(close - text - 1);
		if (host_len == 0 || host_len >= sizeof(host))
			return hc_err_set(err, HC_EDATA, "listen %s: bad address", text);
		memcpy(host, text + 1, host_len);
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
			return hc_err_set(err, HC_EDATA, "listen %s: expected ip:port", text);
		host_len = (size_t)(colon - text);
		if (host_len >= sizeof(host))
			return hc_err_set(err, HC_EDATA, "listen %s: bad address", text);
		memcpy(host, text, host_len);
		port_text = colon + 1;
	}
	host[host_len] = '\0';
	if (hc_parse_int(port_text, 0, 65535, &port) != 0)
		return hc_err_set(err, HC_EDATA, "listen %s: bad port", text);
	memset(ss, 0, sizeof(*ss));
	if (text[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (host_len == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return hc_err_set(err, HC_EDATA, "listen %s: bad IPv4 address", text);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return hc_err_set(err, HC_EDATA, "listen %s: bad IPv6 address", text);
		*len = sizeof(*sin6);
	}
	return 0;
}

int
hc_sockaddr_format(const struct sockaddr_storage *ss, int port, char *out,
                   size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
			return HC_EDATA;
		if (port < 0)
			port = ntohs(sin->sin_port);
		return hc_snprintf(out, size, "%s:%d", host, port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
			return HC_EDATA;
		if (port < 0)
			port = ntohs(sin6->sin6_port);
		return hc_snprintf(out, size, "[%s]:%d", host, port);
	}
	return HC_EDATA;
}

/* Tries for a port free for both TCP and UDP: a kernel-picked TCP port is
 * taken for UDP now and then (DNS test servers need both). */
#define NET_FREE_PORT_TRIES 64

/* Binds a socket of type to addr4:port, returns the port bound or -1. */
static int
net_bind_probe(int type, const struct in_addr *addr4, int port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	int got = -1;

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr = *addr4;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto done;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		goto done;
	got = ntohs(sa.sin_port);
done:
	close(fd);
	return got;
}

int
hc_free_port(const char *addr4, int *port, struct hc_err *err)
{
	struct in_addr a;
	int i;

	if (inet_pton(AF_INET, addr4, &a) != 1)
		return hc_err_set(err, HC_EDATA, "%s: not an IPv4 address", addr4);
	for (i = 0; i < NET_FREE_PORT_TRIES; i++) {
		int p = net_bind_probe(SOCK_STREAM, &a, 0);
		if (p > 0 && net_bind_probe(SOCK_DGRAM, &a, p) == p) {
			*port = p;
			return 0;
		}
	}
	return hc_err_set(err, HC_EUNAVAIL, "no port free for TCP and UDP on %s", addr4);
}
