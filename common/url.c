/* URL parsing on libcurl's CURLU parser, reduced to what the programs need. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hc.h"

int
hc_url_parse(const char *text, struct hc_url *out, struct hc_err *err)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	size_t hlen, i;
	long long portnum;
	int rc = HC_EDATA;
	CURLUcode uc;

	memset(out, 0, sizeof(*out));
	u = curl_url();
	if (u == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	uc = curl_url_set(u, CURLUPART_URL, text, 0);
	if (uc != CURLUE_OK) {
		hc_err_set(err, HC_EDATA, "URL '%s': %s", text, curl_url_strerror(uc));
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		hc_err_set(err, HC_EDATA, "URL '%s': scheme must be http or https", text);
		goto done;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
		hc_err_set(err, HC_EDATA, "URL '%s': no host", text);
		goto done;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    hc_parse_int(port, 1, 65535, &portnum) != 0) {
		hc_err_set(err, HC_EDATA, "URL '%s': bad port", text);
		goto done;
	}
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		hc_err_set(err, HC_EDATA, "URL '%s': bad path", text);
		goto done;
	}
	uc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if (uc != CURLUE_OK && uc != CURLUE_NO_QUERY) {
		hc_err_set(err, HC_EDATA, "URL '%s': bad query", text);
		goto done;
	}
	/* CURLU keeps IPv6 literals in brackets; callers want the bare address. */
	hlen = strlen(host);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	if (hc_strlcpy(out->host, host, sizeof(out->host)) != 0) {
		hc_err_set(err, HC_EDATA, "URL '%s': host too long", text);
		goto done;
	}
	for (i = 0; out->host[i] != '\0'; i++)
		out->host[i] = (char)tolower((unsigned char)out->host[i]);
	for (i = 0; scheme[i] != '\0'; i++)
		out->scheme[i] = (char)tolower((unsigned char)scheme[i]);
	out->port = (int)portnum;
	if (query != NULL) {
		size_t n = strlen(path) + strlen(query) + 2;
		out->path_query = malloc(n);
		if (out->path_query != NULL &&
		    hc_snprintf(out->path_query, n, "%s?%s", path, query) != 0) {
			free(out->path_query);
			out->path_query = NULL;
		}
	} else {
		out->path_query = hc_strdup(path);
	}
	if (out->path_query == NULL) {
		hc_err_set(err, HC_ENOMEM, "out of memory");
		rc = HC_ENOMEM;
		goto done;
	}
	rc = 0;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

void
hc_url_free(struct hc_url *u)
{
	if (u == NULL)
		return;
	free(u->path_query);
	u->path_query = NULL;
}
