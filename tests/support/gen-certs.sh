#!/bin/sh
# gen-certs.sh DIR NAME...: a throw-away test CA in DIR (ca.pem, ca.key) and,
# for each NAME, NAME.pem and NAME.key with NAME as its only subject name.
# Test certificates only: the keys are not protected.
set -eu
dir=$1
shift
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
	-subj "/CN=hydra-agent test CA" >/dev/null 2>&1
for name in "$@"; do
	openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" \
		-subj "/CN=$name" >/dev/null 2>&1
	printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
		"$name" > "$name.ext"
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
		-out "$name.pem" -days 2 -extfile "$name.ext" >/dev/null 2>&1
	rm -f "$name.csr" "$name.ext"
done
