/* Streaming SHA-256 on OpenSSL EVP (which uses the CPU's SHA instructions). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hc.h"

/* Read size for hashing files: large enough to amortize syscalls. */
#define SHA256_READ_CHUNK (256 * 1024)

struct hc_sha256 {
	EVP_MD_CTX *ctx;
};

struct hc_sha256 *
hc_sha256_new(void)
{
	struct hc_sha256 *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		hc_sha256_free(h);
		return NULL;
	}
	return h;
}

void
hc_sha256_free(struct hc_sha256 *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int
hc_sha256_reset(struct hc_sha256 *h)
{
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		return HC_ESOFTWARE;
	return 0;
}

int
hc_sha256_update(struct hc_sha256 *h, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (EVP_DigestUpdate(h->ctx, data, len) != 1)
		return HC_ESOFTWARE;
	return 0;
}

static void
sha256_to_hex(const unsigned char *md, char hex[HC_SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < HC_SHA256_LEN; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex[HC_SHA256_HEX_LEN] = '\0';
}

int
hc_sha256_hex(struct hc_sha256 *h, char hex[HC_SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	int rc = HC_ESOFTWARE;

	if (copy == NULL)
		return HC_ENOMEM;
	if (EVP_MD_CTX_copy_ex(copy, h->ctx) != 1)
		goto done;
	if (EVP_DigestFinal_ex(copy, md, &mdlen) != 1 || mdlen != HC_SHA256_LEN)
		goto done;
	sha256_to_hex(md, hex);
	rc = 0;
done:
	EVP_MD_CTX_free(copy);
	return rc;
}

int
hc_sha256_fd(struct hc_sha256 *h, int fd, off_t limit, struct hc_err *err)
{
	unsigned char *buf = NULL;
	off_t off = 0;
	int rc = 0;

	buf = malloc(SHA256_READ_CHUNK);
	if (buf == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (;;) {
		size_t want = SHA256_READ_CHUNK;
		ssize_t n;

		if (limit >= 0) {
			if (off >= limit)
				break;
			if ((off_t)want > limit - off)
				want = (size_t)(limit - off);
		}
		n = pread(fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = hc_err_set(err, HC_EIO, "read: %s", strerror(errno));
			goto done;
		}
		if (n == 0) {
			if (limit >= 0)
				rc = hc_err_set(err, HC_EIO, "read: file shorter than %lld bytes",
				                (long long)limit);
			goto done;
		}
		rc = hc_sha256_update(h, buf, (size_t)n);
		if (rc != 0) {
			hc_err_set(err, rc, "sha256 update failed");
			goto done;
		}
		off += n;
	}
done:
	free(buf);
	return rc;
}

int
hc_sha256_file(const char *path, char hex[HC_SHA256_HEX_LEN + 1], struct hc_err *err)
{
	struct hc_sha256 *h = NULL;
	int fd = -1;
	int rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, errno == ENOENT ? HC_ENOTFOUND : HC_EIO,
		                  "%s: %s", path, strerror(errno));
	h = hc_sha256_new();
	if (h == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	rc = hc_sha256_fd(h, fd, -1, err);
	if (rc != 0) {
		hc_err_prefix(err, "%s", path);
		goto done;
	}
	rc = hc_sha256_hex(h, hex);
	if (rc != 0)
		hc_err_set(err, rc, "%s: sha256 failed", path);
done:
	hc_sha256_free(h);
	close(fd);
	return rc;
}

int
hc_sha256_hex_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < HC_SHA256_HEX_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[HC_SHA256_HEX_LEN] == '\0';
}

/*
 * RFC 9530 Repr-Digest is a structured-field dictionary such as
 * `sha-512=:...:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`.
 * Only the sha-256 member is read; it must decode to exactly 32 bytes.
 */
int
hc_sha256_from_repr_digest(const char *value, char hex[HC_SHA256_HEX_LEN + 1])
{
	static const char key[] = "sha-256=:";
	unsigned char md[48];
	const char *p, *start, *end;
	int n;

	for (p = value; p != NULL && *p != '\0'; ) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, key, sizeof(key) - 1) == 0)
			break;
		p = strchr(p, ',');
	}
	if (p == NULL || *p == '\0')
		return HC_EDATA;
	start = p + sizeof(key) - 1;
	end = strchr(start, ':');
	/* 32 bytes are 44 base64 characters with one '=' of padding. */
	if (end == NULL || end - start != 44)
		return HC_EDATA;
	n = EVP_DecodeBlock(md, (const unsigned char *)start, 44);
	if (n != 33 || start[43] != '=' || start[42] == '=')
		return HC_EDATA;
	sha256_to_hex(md, hex);
	return 0;
}

int
hc_sha256_to_repr_digest(const char *hex, char *out, size_t size)
{
	unsigned char md[HC_SHA256_LEN];
	unsigned char b64[64];
	size_t i;

	if (!hc_sha256_hex_valid(hex))
		return HC_EDATA;
	for (i = 0; i < HC_SHA256_LEN; i++)
		md[i] = (unsigned char)(hc_hex_value(hex[2 * i]) << 4 |
		                        hc_hex_value(hex[2 * i + 1]));
	if (EVP_EncodeBlock(b64, md, HC_SHA256_LEN) != 44)
		return HC_ESOFTWARE;
	return hc_snprintf(out, size, "sha-256=:%s:", (const char *)b64) == 0 ? 0 : HC_EDATA;
}
