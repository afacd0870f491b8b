#!/bin/bash
# Pre-warm of tools imports (issue 17): an admin import on the origin from
# an upstream release (a local nginx serving the ZIP) journals every file it
# stores and its manifest.json, so a following peer holds the version,
# verified, before any client asks; an admin DELETE of the version on the
# origin journals each file it removes, and the peer drops them.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/support/fleet_env.sh"

command -v nginx > /dev/null || { t_skip "mirror prewarm tools" "nginx is not installed"; t_done; }
command -v python3 > /dev/null || { t_skip "mirror prewarm tools" "python3 is not installed"; t_done; }

M="$BIN/hydra-mirror"
WWW="$T_DIR/www"
mkdir -p "$WWW/demo"
python3 - "$WWW" <<'PY'
import os, sys, zipfile
www = sys.argv[1]
members = [("src/main.py", b"print('one')\n"), ("README.md", b"demo 1.0\n"),
           ("models/w.bin", os.urandom(300000))]
with zipfile.ZipFile(f"{www}/demo/demo-1.0.zip", "w", zipfile.ZIP_DEFLATED) as zf:
    for name, data in members:
        zf.writestr(name, data)
for name, data in members:
    os.makedirs(os.path.dirname(f"{www}/plain/{name}"), exist_ok=True)
    open(f"{www}/plain/{name}", "wb").write(data)
PY
sha() { sha256sum < "$1" | cut -d' ' -f1; }
metric() {
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

ASSETS=$(t_free_port)
env_nginx nginx "$ASSETS" "root $WWW;" || t_done

TOKEN=prewarm-tools-token
printf '%s\n' "$TOKEN" > "$T_DIR/token"
chmod 600 "$T_DIR/token"
OPORT=$(t_free_port)
cat > "$T_DIR/origin.yaml" <<YAML
listen: 127.0.0.1:$OPORT
root: $T_DIR/origin
mode: origin
admin_token_file: $T_DIR/token
tools_upstream:
  archive_url: "http://127.0.0.1:$ASSETS/{tool_id}/{tool_id}-{version}.zip"
  import: on_request_only
YAML
t_start origin "$T_DIR/origin.log" "$M" --config "$T_DIR/origin.yaml"
t_wait_log "$T_DIR/origin.log" "listening on 127.0.0.1:$OPORT" 10000 ||
	{ t_fail "origin starts" "see log"; t_done; }
O="http://127.0.0.1:$OPORT"

WAIT_S=2
PPORT=$(t_free_port)
PROOT="$T_DIR/peer"
cat > "$T_DIR/peer.yaml" <<YAML
listen: "127.0.0.1:$PPORT"
root: $PROOT
mode: peer
origin_url: "$O"
prewarm:
  enabled: true
  prefixes: [tools/]
  concurrency: 2
  wait_s: $WAIT_S
YAML
t_start peer "$T_DIR/peer.log" "$M" --config "$T_DIR/peer.yaml"
t_wait_log "$T_DIR/peer.log" "listening on 127.0.0.1:$PPORT (peer)" 10000 ||
	{ t_fail "peer starts" "see log"; t_done; }
P="http://127.0.0.1:$PPORT"
# One long-poll cycle plus small local fills, five times over.
BOUND_MS=$(( 5 * (WAIT_S * 1000 + 2000) ))
t_wait_log "$T_DIR/peer.log" "prewarm: following journal" "$BOUND_MS" ||
	{ t_fail "peer follows the origin's journal" "$(tail -n 3 "$T_DIR/peer.log")"; t_done; }

V=tools/demo/1.0
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$O/api/v1/tools/demo/1.0/import")
t_eq "admin import on the origin: 200" "$CODE" 200
t_grep "origin journaled the manifest it wrote" <(curl -s "$O/api/v1/peer/changes?since=0") \
	"\"op\":\"put\",\"path\":\"$V/manifest.json\""
if t_wait_log "$T_DIR/peer.log" "prewarmed $V/manifest.json" "$BOUND_MS"; then
	t_ok "the imported version reached the peer within ${BOUND_MS} ms"
else
	t_fail "the imported version reached the peer" "$(tail -n 5 "$T_DIR/peer.log")"
fi
for f in src/main.py README.md models/w.bin; do
	t_eq "peer holds $f of the import, verified" \
		"$(sha "$PROOT/files/$V/files/$f" 2>/dev/null)" "$(sha "$WWW/plain/$f")"
	t_grep "pre-warm fill of $f checked the origin's digest" "$T_DIR/peer.log" \
		"filled $V/files/$f: $(stat -c %s "$WWW/plain/$f") bytes sha256 $(sha "$WWW/plain/$f")"
done
t_eq "peer manifest is the origin's" "$(sha "$PROOT/files/$V/manifest.json" 2>/dev/null)" \
	"$(sha "$T_DIR/origin/files/$V/manifest.json")"
t_eq "no client asked the peer" "$(metric "$P" hydra_mirror_misses_total)" 0
t_eq "peer counts four pre-warm fills" "$(metric "$P" hydra_mirror_prewarm_fills_total)" 4

CODE=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" \
	"$O/api/v1/tools/demo/1.0")
t_eq "admin DELETE of the version on the origin: 200" "$CODE" 200
end=$(( $(date +%s%N) / 1000000 + BOUND_MS ))
while [ "$(metric "$P" hydra_mirror_prewarm_deleted_total)" -lt 4 ] &&
	[ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do sleep 0.05; done
t_eq "peer applied four deletions" "$(metric "$P" hydra_mirror_prewarm_deleted_total)" 4
t_grep "peer logged the manifest's deletion" "$T_DIR/peer.log" \
	"prewarm: deleted $V/manifest.json (deleted on the origin)"
t_eq "peer holds no file of the deleted version" \
	"$(find "$PROOT/files/$V" -type f 2>/dev/null | wc -l)" 0

t_stop peer
t_stop origin
t_stop nginx
t_done
