/* IP literals to socket addresses, for clients that connect to a given IP. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/hc.h"

int
hc_sockaddr_from_ip(const char *ip, int port, struct sockaddr_storage *ss,
                    socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (port < 0 || port > 65535)
		return HC_EDATA;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return HC_EDATA;
}
