#!/usr/bin/env bash
#
# bench/drain_versions.sh -- bench/drain.sh on several PostgreSQL servers in
# one session, alternated (A, B, A, B...), and one table of the ratios to
# basic_archive on each server.
#
#     bench/drain_versions.sh /usr/lib/postgresql/15/bin /var/cache/pg_walvault/pg18/bin
#
# Each argument is a server's bindir (pg_walvault and basic_archive
# installed in it).  ROUNDS (default 2) rounds; every round runs drain.sh
# once per server, in the order given.  drain.sh's own knobs pass through
# (CONFIGS defaults here to "basic_archive walvault_4 walvault_4_lz4
# walvault_0", REPEAT to 3); each run writes its own report into
# bench/results, and this script writes the summary of them all there too,
# as drain-versions-STAMP.md.  Alternating spreads a drift of the machine
# (the disk's speed moves from one minute to the next on a VM) over every
# server, which one server after the other would not.
#
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs ROUNDS CONFIGS REPEAT
ROUNDS=${ROUNDS:-2}
export CONFIGS=${CONFIGS:-basic_archive walvault_4 walvault_4_lz4 walvault_0}
export REPEAT=${REPEAT:-3}

(($# >= 1)) || die "usage: drain_versions.sh BINDIR [BINDIR...]"
is_uint "$ROUNDS" && ((ROUNDS >= 1)) || die "ROUNDS must be a positive integer"
case " $CONFIGS " in *" basic_archive "*) ;; *) die "CONFIGS must include basic_archive" ;; esac
for b in "$@"; do
	[[ -x $b/postgres ]] || die "no postgres in $b"
done

CMDLINE="${SET_KNOBS}bench/drain_versions.sh $*"
PARENT=${TMPDIR:-/tmp}
OUT=$(mktemp "$PARENT/drain-versions.XXXXXX")
trap 'rm -f "$OUT"' EXIT
reports=()       # "bindir report" per run, in order

for ((round = 1; round <= ROUNDS; round++)); do
	for b in "$@"; do
		log "round $round/$ROUNDS: $("$b/postgres" --version)"
		runlog=$(mktemp "$PARENT/drain-versions-run.XXXXXX")
		PG_BINDIR=$b bash "$SCRIPT_DIR/drain.sh" >"$runlog" 2>&1 ||
			{ tail -n 20 "$runlog" >&2; die "drain.sh failed on $b (log: $runlog)"; }
		report=$(sed -n 's/.*results written to \(.*\.md\)$/\1/p' "$runlog" | tail -n 1)
		[[ -f $report ]] || die "drain.sh wrote no report on $b (log: $runlog)"
		rm -f "$runlog"
		log "    $(basename "$report")"
		reports+=("$b $report")
	done
done

# the "vs basic_archive" column of a report's results table, by configuration
# label, as "label<TAB>ratio" lines; and basic_archive's median
ratios() {
	awk -F' *\\| *' '/^\| configuration \|/ { on = 1; next }
		on && /^\|---/ { next }
		on && /^\|/ { sub(/×$/, "", $6); print $2 "\t" $6 "\t" $3; next }
		on { exit }' "$1"
}

{
	echo "### WAL backlog drain on several servers, $(date -u '+%Y-%m-%d %H:%M') UTC"
	echo
	echo "- Command (from the repository root): \`$CMDLINE\`; each run is \`bench/drain.sh\` with CONFIGS=\"$CONFIGS\" REPEAT=$REPEAT"
	echo "- Runs, in order: $(for r in "${reports[@]}"; do printf '%s (%s); ' "$(basename "${r#* }")" "$("${r%% *}/postgres" --version | sed 's/^postgres (PostgreSQL) //')"; done)"
	echo
	echo "Ratio of each configuration's median drain rate to basic_archive's, on the same server in the same run:"
	echo
	labels=$(ratios "${reports[0]#* }" | cut -f1)
	printf '| server | run | basic_archive median s |'
	while IFS= read -r l; do [[ $l == basic_archive* ]] || printf ' %s |' "$l"; done <<<"$labels"
	echo
	printf '|---|---|---:|'
	while IFS= read -r l; do [[ $l == basic_archive* ]] || printf -- '---:|'; done <<<"$labels"
	echo
	for b in "$@"; do
		version=$("$b/postgres" --version | sed 's/^postgres (PostgreSQL) //')
		declare -A sum=()
		n=0
		for r in "${reports[@]}"; do
			[[ ${r%% *} == "$b" ]] || continue
			report=${r#* }
			n=$((n + 1))
			base=$(ratios "$report" | awk -F'\t' '$1 ~ /^basic_archive/ { print $3 }')
			printf '| %s | `%s` | %s |' "$version" "$(basename "$report")" "$base"
			while IFS=$'\t' read -r l ratio _; do
				[[ $l == basic_archive* ]] && continue
				printf ' %s× |' "$ratio"
				sum[$l]=$(calc "${sum[$l]:-0} + $ratio" %.4f)
			done < <(ratios "$report")
			echo
		done
		printf '| **%s, mean of %d** | | |' "$version" "$n"
		while IFS= read -r l; do
			[[ $l == basic_archive* ]] && continue
			printf ' **%s×** |' "$(calc "${sum[$l]:-0} / $n" %.2f)"
		done <<<"$labels"
		echo
		unset sum
	done
} >"$OUT"

publish_report drain-versions
