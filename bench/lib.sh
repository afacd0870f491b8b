# bench/lib.sh: sourced by bench scripts; the target rows they share.
#
# bench_target MEASURE REF VALUE OP LIMIT: one row with the ratio VALUE / REF
# against OP LIMIT (OP one of <=, <, >=), ending in ok or MISS; counts into
# BENCH_MET and BENCH_ALL for the `NAME: N of M targets met` line.
BENCH_MET=0
BENCH_ALL=0
bench_target_header() {
	printf '\n%-34s %12s %12s %7s %8s  %s\n' "target" "reference" "${1:-value}" "ratio" "target" "met"
}
bench_target() {
	_r=$(awk -v a="$3" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')
	_ok=$(awk -v r="$_r" -v op="$4" -v l="$5" 'BEGIN {
		if (r == "n/a") { print "MISS"; exit }
		print ((op == "<=" && r + 0 <= l + 0) || (op == "<" && r + 0 < l + 0) ||
		       (op == ">=" && r + 0 >= l + 0)) ? "ok" : "MISS" }')
	printf '%-34s %12s %12s %7s %8s  %s\n' "$1" "$2" "$3" "$_r" "$4 $5" "$_ok"
	BENCH_ALL=$((BENCH_ALL + 1))
	if [ "$_ok" = ok ]; then
		BENCH_MET=$((BENCH_MET + 1))
	fi
}
