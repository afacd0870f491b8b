# tests/support/upstream_env.sh: sourced after tests/lib.sh by the
# mirror_upstream* tests. Requests to a mirror answering from upstream
# releases, and the checks every refused release gets.

# get NAME URL: body to $T_DIR/NAME.body, headers to $T_DIR/NAME.h, status in CODE.
get() {
	CODE=$(curl -s -o "$T_DIR/$1.body" -D "$T_DIR/$1.h" -w '%{http_code}' "$2")
}

# header NAME FIELD: the value of FIELD in the headers get NAME saved.
header() { awk -v h="$2:" 'tolower($1) == tolower(h) { print $2 }' "$T_DIR/$1.h" | tr -d '\r'; }

# refused NAME TOOL/VERSION/files/MEMBER REASON: the miss is 502, REASON is
# in $LOG, and nothing of TOOL is under $ROOT (the mirror at $T).
refused() {
	get "$1" "$T/$2"
	t_eq "$1: 502" "$CODE" 502
	t_grep "$1: the reason is logged" "$LOG" "$3"
	t_eq "$1: nothing stored" "$(find "$ROOT/files/tools/${2%%/*}" -type f 2>/dev/null | wc -l)" 0
}
