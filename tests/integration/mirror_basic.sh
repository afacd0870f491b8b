#!/bin/bash
# hydra-mirror in origin mode against curl and aria2c: GET, HEAD, ranges, 416,
# digest headers, PUT and DELETE with the admin token, path confinement,
# config file and flags, metadata kept across a restart, TLS.
. "$(dirname "$0")/../lib.sh"

M="$BIN/hydra-mirror"
ROOT="$T_DIR/origin"
mkdir -p "$ROOT/files/builds/exp1" "$T_DIR/outside"
head -c 3000000 /dev/urandom > "$ROOT/files/builds/exp1/build.zip"
printf 'hello mirror\n' > "$ROOT/files/builds/small.txt"
: > "$ROOT/files/builds/empty.bin"
echo "secret outside the root" > "$T_DIR/outside/secret.txt"
ln -s "$T_DIR/outside/secret.txt" "$ROOT/files/builds/escape.txt"
ln -s "$T_DIR/outside" "$ROOT/files/outdir"
printf 'tok-%s\n' "$RANDOM$RANDOM" > "$T_DIR/token"
TOKEN=$(head -n1 "$T_DIR/token")
FILE="$ROOT/files/builds/exp1/build.zip"
WANT_SHA=$(sha256sum "$FILE" | cut -d' ' -f1)

# --help and --version
"$M" --help > "$T_DIR/help" 2>&1
t_grep "--help is a man page" "$T_DIR/help" "SYNOPSIS"
t_grep "--help names --max-egress-bytes-per-s" "$T_DIR/help" "--max-egress-bytes-per-s"
"$M" --version > "$T_DIR/version" 2>&1
t_grep "--version" "$T_DIR/version" "hydra-mirror "
"$M" --bogus > /dev/null 2>&1
t_eq "unknown flag exits 64" "$?" "64"

# A bad config names file, line and column.
printf 'listen: 127.0.0.1:1\nroot: %s\nbogus_key: 1\n' "$ROOT" > "$T_DIR/bad.yaml"
"$M" --config "$T_DIR/bad.yaml" > "$T_DIR/bad.out" 2>&1
t_eq "unknown config key exits 78" "$?" "78"
t_grep "config error names file:line:col" "$T_DIR/bad.out" "bad.yaml:3:1"

# Config file with a port that is in use; the flag overrides it.
PORT=$(t_free_port)
printf 'listen: 127.0.0.1:1\nroot: /nonexistent\nmode: origin\nadmin_token_file: %s\n' \
	"$T_DIR/token" > "$T_DIR/mirror.yaml"
t_start origin "$T_DIR/origin.log" "$M" --config "$T_DIR/mirror.yaml" \
	--listen "127.0.0.1:$PORT" --root "$ROOT"
if t_wait_log "$T_DIR/origin.log" "hydra-mirror listening on 127.0.0.1:$PORT (origin)" 10000; then
	t_ok "readiness line with flags over the config file"
else
	t_fail "readiness line" "see log"; cat "$T_DIR/origin.log"; t_done
fi
U="http://127.0.0.1:$PORT/api/v1/peer/files"
"$M" --mode peer --origin-url "http://127.0.0.1:$PORT" --listen "127.0.0.1:$(t_free_port)" \
	--root "$ROOT" > "$T_DIR/second.out" 2>&1
t_eq "a peer on an origin's root exits 69" "$?" "69"
t_grep "and says why" "$T_DIR/second.out" "another hydra-mirror uses this root"

# Full GET and its headers.
curl -s -D "$T_DIR/h" -o "$T_DIR/got" "$U/builds/exp1/build.zip"
t_eq "GET body sha256" "$(sha256sum < "$T_DIR/got" | cut -d' ' -f1)" "$WANT_SHA"
t_grep "GET 200" "$T_DIR/h" "HTTP/1.1 200"
t_grep "Content-Length" "$T_DIR/h" "Content-Length: 3000000"
t_grep "Accept-Ranges" "$T_DIR/h" "Accept-Ranges: bytes"
t_grep "X-File-SHA256 matches sha256sum" "$T_DIR/h" "X-File-SHA256: $WANT_SHA"
B64=$(openssl dgst -sha256 -binary "$FILE" | base64)
t_grep "Repr-Digest matches openssl dgst" "$T_DIR/h" "Repr-Digest: sha-256=:$B64:"
t_grep "strong ETag" "$T_DIR/h" "ETag: \"$WANT_SHA\""
t_grep "Last-Modified" "$T_DIR/h" "Last-Modified: "

# HEAD carries the same headers and no body.
curl -s -I "$U/builds/exp1/build.zip" > "$T_DIR/hh"
t_grep "HEAD Content-Length" "$T_DIR/hh" "Content-Length: 3000000"
t_grep "HEAD X-File-SHA256" "$T_DIR/hh" "X-File-SHA256: $WANT_SHA"
t_grep "HEAD Repr-Digest" "$T_DIR/hh" "Repr-Digest: sha-256=:$B64:"
t_grep "HEAD ETag" "$T_DIR/hh" "ETag: \"$WANT_SHA\""

# Ranges.
curl -s -D "$T_DIR/rh" -o "$T_DIR/r1" -r 1000-1999 "$U/builds/exp1/build.zip"
t_grep "range 206" "$T_DIR/rh" "HTTP/1.1 206"
t_grep "range Content-Range" "$T_DIR/rh" "Content-Range: bytes 1000-1999/3000000"
t_eq "range bytes" "$(cmp -s "$T_DIR/r1" <(tail -c +1001 "$FILE" | head -c 1000) && echo same)" "same"
curl -s -o "$T_DIR/r2" -r -500 "$U/builds/exp1/build.zip"
t_eq "suffix range bytes" "$(cmp -s "$T_DIR/r2" <(tail -c 500 "$FILE") && echo same)" "same"
curl -s -o "$T_DIR/r3" -r 2999000- "$U/builds/exp1/build.zip"
t_eq "open range bytes" "$(cmp -s "$T_DIR/r3" <(tail -c 1000 "$FILE") && echo same)" "same"
curl -s -D "$T_DIR/r416" -o /dev/null -r 3000000- "$U/builds/exp1/build.zip"
t_grep "416 past the end" "$T_DIR/r416" "HTTP/1.1 416"
t_grep "416 Content-Range" "$T_DIR/r416" "Content-Range: bytes */3000000"
curl -s -D "$T_DIR/rif" -o /dev/null -r 0-9 -H 'If-Range: "other"' "$U/builds/exp1/build.zip"
t_grep "If-Range with another ETag sends it all" "$T_DIR/rif" "HTTP/1.1 200"
curl -s -D "$T_DIR/rif2" -o /dev/null -r 0-9 -H "If-Range: \"$WANT_SHA\"" "$U/builds/exp1/build.zip"
t_grep "If-Range with the ETag keeps the range" "$T_DIR/rif2" "HTTP/1.1 206"
t_eq "empty file" "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$U/builds/empty.bin")" "200 0"
t_eq "404" "$(curl -s -o /dev/null -w '%{http_code}' "$U/builds/none.zip")" "404"

# aria2c, four connections with segmented ranges.
if command -v aria2c > /dev/null; then
	aria2c -q -x4 -s4 -k1M --min-split-size=1M --allow-overwrite=true -d "$T_DIR" \
		-o aria.zip "$U/builds/exp1/build.zip" > "$T_DIR/aria.log" 2>&1
	t_eq "aria2c -x4 -s4 download" "$(sha256sum < "$T_DIR/aria.zip" | cut -d' ' -f1)" "$WANT_SHA"
else
	t_skip "aria2c -x4 -s4 download" "aria2c not installed"
fi

# Path confinement: each answers 400 and reads nothing outside the root.
for p in '../../etc/passwd' '..%2f..%2fetc%2fpasswd' '%2e%2e/%2e%2e/etc/passwd' \
	'builds/%2e%2e/%2e%2e/%2e%2e/etc/passwd' 'builds/..%5c..%5cetc' 'builds%5c..%5c..' \
	'%2fetc%2fpasswd' 'builds/small.txt%00.zip' 'builds/%252e%252e/x' \
	'builds/./small.txt' 'builds//small.txt' 'builds/escape.txt' 'outdir/secret.txt' \
	'builds/%' 'builds/%zz'; do
	code=$(curl -s --path-as-is -o "$T_DIR/trav" -w '%{http_code}' "$U/$p")
	if [ "$code" = 400 ] && ! grep -q "secret outside" "$T_DIR/trav"; then
		t_ok "traversal $p answers 400"
	else
		t_fail "traversal $p answers 400" "got $code"
	fi
done

# A FIFO in the store is not a file: answered at once, no thread held.
mkfifo "$ROOT/files/builds/fifo"
t_eq "GET of a FIFO answers 404 at once" "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$U/builds/fifo")" "404"
t_eq "and the server still answers" "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$U/builds/small.txt")" "200"
rm "$ROOT/files/builds/fifo"

# PUT and DELETE.
head -c 200000 /dev/urandom > "$T_DIR/up.bin"
UP_SHA=$(sha256sum "$T_DIR/up.bin" | cut -d' ' -f1)
t_eq "PUT without token 401" "$(curl -s -o /dev/null -w '%{http_code}' -T "$T_DIR/up.bin" "$U/up/new.bin")" "401"
t_eq "PUT with a wrong token 401" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' -T "$T_DIR/up.bin" "$U/up/new.bin")" "401"
t_eq "nothing stored after 401" "$(ls "$ROOT/files/up" 2>/dev/null | wc -l)" "0"
t_eq "PUT with a bad digest 422" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H "X-File-SHA256: $WANT_SHA" -T "$T_DIR/up.bin" "$U/up/new.bin")" "422"
t_eq "nothing stored after 422" "$(ls -A "$ROOT/tmp"; ls -A "$ROOT/files/up" 2>/dev/null)" ""
t_eq "PUT with the digest 201" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H "X-File-SHA256: $UP_SHA" -T "$T_DIR/up.bin" "$U/up/new.bin")" "201"
t_eq "PUT stored the bytes" "$(sha256sum < "$ROOT/files/up/new.bin" | cut -d' ' -f1)" "$UP_SHA"
curl -s -I "$U/up/new.bin" > "$T_DIR/uph"
t_grep "PUT file served with its digest" "$T_DIR/uph" "X-File-SHA256: $UP_SHA"
t_eq "PUT without a digest 201" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data-binary 'v2' -X PUT "$U/up/plain.txt")" "201"
t_eq "PUT replaces" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data-binary 'v3' -X PUT "$U/up/plain.txt") $(curl -s "$U/up/plain.txt")" "201 v3"
t_eq "PUT traversal 400" "$(curl -s --path-as-is -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data-binary x -X PUT "$U/../evil.txt")" "400"
# A PUT through a link out of the store is refused before any folder is made.
t_eq "PUT through a linked folder 400" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data-binary x -X PUT "$U/outdir/newdir/x")" "400"
t_eq "no folder made outside the store" "$(ls -A "$T_DIR/outside")" "secret.txt"
t_eq "PUT into new folders 201" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data-binary deep -X PUT "$U/up/d1/d2/deep.txt") $(cat "$ROOT/files/up/d1/d2/deep.txt")" "201 deep"
t_eq "DELETE without token 401" "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/up/plain.txt")" "401"
t_eq "DELETE 204" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -X DELETE "$U/up/plain.txt")" "204"
t_eq "deleted file 404" "$(curl -s -o /dev/null -w '%{http_code}' "$U/up/plain.txt")" "404"
t_eq "POST 405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data x "$U/up/new.bin")" "405"
t_nogrep "the token never appears in the log" "$T_DIR/origin.log" "$TOKEN"

# Tools route: the same store under tools/.
mkdir -p "$ROOT/files/tools/t1/1.0/files/bin"
echo '{"files": []}' > "$ROOT/files/tools/t1/1.0/manifest.json"
echo tool > "$ROOT/files/tools/t1/1.0/files/bin/tool"
t_eq "tools manifest" "$(curl -s "http://127.0.0.1:$PORT/api/v1/tools/t1/1.0/manifest.json")" '{"files": []}'
t_eq "tools file" "$(curl -s "http://127.0.0.1:$PORT/api/v1/tools/t1/1.0/files/bin/tool")" "tool"
# DELETE of a version never leaves the store through a link: 400, the
# outside files stay.
mkdir -p "$T_DIR/evil/v1"
echo keep > "$T_DIR/evil/v1/keep.txt"
ln -s "$T_DIR/evil" "$ROOT/files/tools/evil"
t_eq "DELETE of a version through a linked tool folder 400" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -X DELETE "http://127.0.0.1:$PORT/api/v1/tools/evil/v1")" "400"
t_eq "the file outside the store stays" "$(cat "$T_DIR/evil/v1/keep.txt" 2>&1)" "keep"
mkdir -p "$ROOT/files/tools/t2"
ln -s "$T_DIR/evil/v1" "$ROOT/files/tools/t2/v1"
t_eq "DELETE of a linked version folder 400" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -X DELETE "http://127.0.0.1:$PORT/api/v1/tools/t2/v1")" "400"
mkdir -p "$ROOT/files/tools/t2/v2"
echo a > "$ROOT/files/tools/t2/v2/a.txt"
ln -s "$T_DIR/evil/v1/keep.txt" "$ROOT/files/tools/t2/v2/link.txt"
t_eq "DELETE of a version holding a link 200" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -X DELETE "http://127.0.0.1:$PORT/api/v1/tools/t2/v2")" "200"
t_eq "the version is gone, the link's target stays" \
	"$(ls -A "$ROOT/files/tools/t2"; cat "$T_DIR/evil/v1/keep.txt")" "v1
keep"
rm "$ROOT/files/tools/evil" "$ROOT/files/tools/t2/v1"
# tools/ID/NAME that is a file is deleted as a file.
echo f > "$ROOT/files/tools/t2/notes.txt"
t_eq "DELETE of a file at version depth 204" "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $TOKEN" -X DELETE "http://127.0.0.1:$PORT/api/v1/tools/t2/notes.txt")" "204"
t_eq "the file is gone" "$(ls -A "$ROOT/files/tools/t2")" ""

# Health and metrics.
curl -s "http://127.0.0.1:$PORT/api/v1/health" > "$T_DIR/health"
t_grep "health status" "$T_DIR/health" '"status":"healthy"'
t_grep "health role" "$T_DIR/health" '"role":"origin"'
t_grep "health cache" "$T_DIR/health" '"cache":{"bytes":'
curl -s "http://127.0.0.1:$PORT/metrics" > "$T_DIR/metrics"
t_grep "metrics requests by code" "$T_DIR/metrics" 'hydra_mirror_requests_total{code="206"}'
t_grep "metrics hits" "$T_DIR/metrics" 'hydra_mirror_hits_total'
t_grep "metrics fills in flight" "$T_DIR/metrics" 'hydra_mirror_fills_in_flight 0'

# The digest is computed once: a restart finds it in the index, and a file
# changed behind the server's back is hashed again.
t_stop origin
t_grep "clean shutdown" "$T_DIR/origin.log" "mirror: stopped"
t_grep "index holds the digest" "$ROOT/meta/index" "$WANT_SHA builds/exp1/build.zip"
touch "$ROOT/tmp/part.stale"
t_start origin "$T_DIR/origin2.log" "$M" --listen "127.0.0.1:$PORT" --root "$ROOT" \
	--admin-token-file "$T_DIR/token"
t_wait_log "$T_DIR/origin2.log" "listening on" 10000
t_grep "restart hashes nothing" "$T_DIR/origin2.log" "0 hashed now"
t_eq "stale temp files removed" "$(ls "$ROOT/tmp" | wc -l)" "0"
printf 'changed\n' > "$ROOT/files/builds/small.txt"
t_grep "changed file gets a new digest" <(curl -s -I "$U/builds/small.txt") \
	"X-File-SHA256: $(printf 'changed\n' | sha256sum | cut -d' ' -f1)"
t_stop origin

# TLS with a CA made now.
if openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=Test CA" \
	-keyout "$T_DIR/ca.key" -out "$T_DIR/ca.pem" > /dev/null 2>&1 &&
   openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	-keyout "$T_DIR/srv.key" -out "$T_DIR/srv.csr" > /dev/null 2>&1 &&
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$T_DIR/ext" &&
   openssl x509 -req -in "$T_DIR/srv.csr" -CA "$T_DIR/ca.pem" -CAkey "$T_DIR/ca.key" \
	-CAcreateserial -days 1 -extfile "$T_DIR/ext" -out "$T_DIR/srv.pem" > /dev/null 2>&1; then
	TPORT=$(t_free_port)
	t_start tls "$T_DIR/tls.log" "$M" --listen "127.0.0.1:$TPORT" --root "$ROOT" \
		--tls-cert "$T_DIR/srv.pem" --tls-key "$T_DIR/srv.key"
	t_wait_log "$T_DIR/tls.log" "listening on" 10000
	curl -s --cacert "$T_DIR/ca.pem" -D "$T_DIR/th" -o "$T_DIR/tgot" \
		"https://localhost:$TPORT/api/v1/peer/files/builds/exp1/build.zip" \
		--resolve "localhost:$TPORT:127.0.0.1"
	t_eq "HTTPS GET verified by the test CA" "$(sha256sum < "$T_DIR/tgot" | cut -d' ' -f1)" "$WANT_SHA"
	t_grep "HTTPS digest header" "$T_DIR/th" "X-File-SHA256: $WANT_SHA"
	curl -s --cacert "$T_DIR/ca.pem" -o "$T_DIR/tr" -r 5-14 --resolve "localhost:$TPORT:127.0.0.1" \
		"https://localhost:$TPORT/api/v1/peer/files/builds/exp1/build.zip"
	t_eq "HTTPS range" "$(cmp -s "$T_DIR/tr" <(tail -c +6 "$FILE" | head -c 10) && echo same)" "same"
	t_eq "HTTPS refused without the CA" "$(curl -s -o /dev/null -w '%{http_code}' \
		--resolve "localhost:$TPORT:127.0.0.1" "https://localhost:$TPORT/api/v1/health")" "000"
	# A peer fills from the HTTPS origin, verified with tls.ca_file.
	PPORT=$(t_free_port)
	t_start tlspeer "$T_DIR/tlspeer.log" "$M" --mode peer --listen "127.0.0.1:$PPORT" \
		--root "$T_DIR/tlspeer" --origin-url "https://127.0.0.1:$TPORT" --tls-ca-file "$T_DIR/ca.pem"
	t_wait_log "$T_DIR/tlspeer.log" "listening on" 10000
	curl -s -o "$T_DIR/pgot" "http://127.0.0.1:$PPORT/api/v1/peer/files/builds/exp1/build.zip"
	t_eq "peer fills from an HTTPS origin" "$(sha256sum < "$T_DIR/pgot" | cut -d' ' -f1)" "$WANT_SHA"
	t_stop tlspeer
	PPORT=$(t_free_port)
	t_start tlspeer2 "$T_DIR/tlspeer2.log" "$M" --mode peer --listen "127.0.0.1:$PPORT" \
		--root "$T_DIR/tlspeer2" --origin-url "https://127.0.0.1:$TPORT"
	t_wait_log "$T_DIR/tlspeer2.log" "listening on" 10000
	t_eq "peer refuses an origin its CAs do not trust (502)" "$(curl -s -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$PPORT/api/v1/peer/files/builds/exp1/build.zip")" "502"
	t_stop tlspeer2
	t_stop tls
else
	t_skip "HTTPS" "openssl could not make a test CA"
fi

t_done
