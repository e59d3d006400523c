# Figures and the final table. `record` appends "broker<TAB>figure<TAB>value" to
# $OUT/figures.tsv; `report` joins RabbitMQ's and Warren's value of each figure, in the
# order figures were first recorded, with the ratio Warren/RabbitMQ.

record() {  # FIGURE VALUE
  printf '%s\t%s\t%s\n' "$B" "$1" "$2" >>"$OUT/figures.tsv"
  log "$B: $1 = $2"
}

report() {
  awk -F'\t' '
    !($2 in seen) { seen[$2] = 1; order[++n] = $2 }
    { value[$1, $2] = $3 }
    function show(v) { return v == "" ? "-" : (v ~ /^[0-9.]+$/ ? sprintf("%.2f", v) : v) }
    END {
      for (i = 1; i <= n; i++) {
        f = order[i]; r = value["rabbitmq", f]; w = value["warren", f]
        ratio = (r != "" && w != "" && r + 0 != 0) ? sprintf("%.2f", w / r) : "-"
        printf "%s\t%s\t%s\t%s\n", f, show(r), show(w), ratio
      }
    }' "$OUT/figures.tsv" >"$OUT/table.tsv"
  {
    echo "| figure | RabbitMQ | Warren | Warren/RabbitMQ |"
    echo "|---|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$OUT/table.tsv"
  } >"$OUT/table.md"
  jq -R -s --argjson disk "$(cat "$OUT/raw/disk-probe.json" 2>/dev/null || echo null)" \
    --arg command "$COMMAND" --arg machine "$(machine_line)" '
    { command: $command, machine: $machine, disk_probe: $disk,
      figures: [ split("\n")[] | select(length > 0) | split("\t")
                 | { figure: .[0], rabbitmq: .[1], warren: .[2], ratio: .[3] } ] }' \
    "$OUT/table.tsv" >"$OUT/table.json"
  echo
  column -t -s $'\t' -N "figure,RabbitMQ,Warren,Warren/RabbitMQ" "$OUT/table.tsv" 2>/dev/null \
    || cat "$OUT/table.md"
  echo
  echo "written: $OUT/table.md, $OUT/table.json (raw runs in $OUT/raw)"
}

# The disk's limit (the same for both: one column each), and each broker's best publish
# rate as a share of it, so the table shows how close each gets to the disk.
disk_rows() {
  local records mb best
  records=$(jq .records_per_s "$OUT/raw/disk-probe.json")
  mb=$(jq .mb_per_s "$OUT/raw/disk-probe.json")
  for B in $BROKERS; do
    record "disk: fdatasync'd 1 KiB records/s (groups of 64)" "$records"
    record "disk: MB/s" "$mb"
    best=$(awk -F'\t' -v b="$B" '$1 == b && $2 ~ /confirmed msg\/s|publish msg\/s/ && $3 > m { m = $3 }
      END { print m + 0 }' "$OUT/figures.tsv")
    record "best publish rate as % of disk records/s" "$(awk -v a="$best" -v d="$records" \
      'BEGIN { printf "%.2f", (d > 0 ? 100 * a / d : 0) }')"
  done
}

machine_line() {
  local disk
  disk=$(df -h "$WORK" | awk 'NR == 2 { print $1 " " $2 }')
  echo "nproc $(nproc), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, disk $disk," \
    "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
