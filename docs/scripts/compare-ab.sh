#!/usr/bin/env bash
# Throughput of two Warren builds in one run: chaos/bench/compare.sh's scenarios on a
# three-node cluster, the base build and this checkout alternating ROUNDS times, the same
# warren-bench (this checkout's) for both. Prints each run's table and, per figure, the
# ratio new/base (mean over rounds). Ratios from one run on one shared machine; absolute
# figures are for orientation only.
#
# Usage (as root, from anywhere in the repository):
#   docs/scripts/compare-ab.sh [BASE_REV]        (default: 0605cbc, before issue 13)
# Environment: ROUNDS=2  SCENARIOS="1 3"  SECONDS_EACH=30  OUT=/tmp/compare-ab.<time>
set -euo pipefail
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
BASE_REV=${1:-0605cbc}
ROUNDS=${ROUNDS:-2}
SCENARIOS=${SCENARIOS:-"1 3"}
SECONDS_EACH=${SECONDS_EACH:-30}
OUT=${OUT:-/tmp/compare-ab.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

echo "--- build this checkout ($(git -C "$REPO" rev-parse --short HEAD)) and warren-bench"
(cd "$REPO" && cargo build --release -q -p warren -p chaos --bins)
base_bin=$REPO/target-base/release/warren
if [ ! -x "$base_bin" ] || [ "$(cat "$REPO/target-base/rev" 2>/dev/null)" != "$BASE_REV" ]; then
  echo "--- build $BASE_REV (base) in a temporary worktree"
  tree=$OUT/base-src
  git -C "$REPO" worktree add --detach "$tree" "$BASE_REV" >/dev/null
  (cd "$tree" && CARGO_TARGET_DIR=$REPO/target-base cargo build --release -q --bin warren)
  git -C "$REPO" worktree remove --force "$tree"
  echo "$BASE_REV" >"$REPO/target-base/rev"
fi

for round in $(seq "$ROUNDS"); do
  for variant in base new; do
    bin=$([ "$variant" = base ] && echo "$base_bin" || echo "$REPO/target/release/warren")
    echo "--- round $round, $variant"
    WARREN=$bin "$REPO/chaos/bench/compare.sh" --only warren --skip-build \
      --scenarios "$SCENARIOS" --seconds "$SECONDS_EACH" --out "$OUT/r$round-$variant" \
      | tail -20
  done
done

echo "--- new/base, mean over rounds (from each run's table.json)"
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys, pathlib
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def figures(variant, r):
    table = json.loads((out / f"r{r}-{variant}" / "table.json").read_text())
    return {f["figure"]: f["warren"] for f in table["figures"] if f["warren"] != "-"}
runs = {(v, r): figures(v, r) for v in ("base", "new") for r in range(1, rounds + 1)}
print(f"{'figure':60} " + " ".join(f"{'base r%d' % r:>10} {'new r%d' % r:>10}" for r in range(1, rounds + 1)) + f" {'new/base':>9}")
for name in runs["new", 1]:
    if name.startswith("disk") or "% of disk" in name:
        continue
    cells, ratios = [], []
    for r in range(1, rounds + 1):
        base, new = runs["base", r].get(name), runs["new", r].get(name)
        cells.append(f"{base or '-':>10} {new or '-':>10}")
        try:
            if float(base):
                ratios.append(float(new) / float(base))
        except (TypeError, ValueError):
            pass
    ratio = f"{sum(ratios) / len(ratios):9.2f}" if ratios else f"{'-':>9}"
    print(f"{name[:60]:60} " + " ".join(cells) + f" {ratio}")
PY
echo "results in $OUT"
