#!/usr/bin/env bash
# Prior-building benchmark: wall time and peak memory to build each of the four tables for the
# ~20,000 human protein-coding genes (the embedded HGNC table), K = 768 (the official width),
# release build, this machine. Inputs: the HGNC gene groups and the OmniPath table of
# ../shared/data/priors, the wu2020 raw counts for co-expression, and generated promoter
# sequences (2,500 bp per gene, seeded: no genome ships here; docs/priors.md says how to
# supply real ones).
#
#   bash bench/priors/run.sh          # DIM=768 WORK=/tmp/gc-priors-bench
#   TABLES="grn co_exp promoter" bash bench/priors/run.sh    # a subset
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DIM="${DIM:-768}"
WORK="${WORK:-/tmp/gc-priors-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
S="$ROOT/../shared/data"
(cd "$ROOT" && cargo build --release -p genecompass-trainer --bin genecompass-train) >&2
B="$CARGO_TARGET_DIR/release/genecompass-train"
rm -rf "$WORK/store"; mkdir -p "$WORK"
"$B" vocab --species human --biotypes protein_coding --output "$WORK/vocab.json" >&2
GENES=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d))" "$WORK/vocab.json")
python3 - "$WORK/vocab.json" "$WORK/promoters.fa" <<'PY'
import json, random, sys
tokens = [t for t, _ in sorted(json.load(open(sys.argv[1])).items(), key=lambda x: x[1]) if t.startswith("ENSG")]
rng = random.Random(7)
with open(sys.argv[2], "w") as f:
    for t in tokens:
        f.write(f">{t}\n")
        seq = "".join(rng.choice("ACGT") for _ in range(2500))
        for i in range(0, 2500, 80):
            f.write(seq[i:i + 80] + "\n")
PY
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg); vocabulary: $GENES tokens; K = $DIM"
TABLES="${TABLES:-gene_family grn co_exp promoter}"
run() { # name, args...
  local name=$1; shift
  case " $TABLES " in *" $name "*) ;; *) return 0 ;; esac
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$B" priors "$@" --vocab "$WORK/vocab.json" --dim "$DIM" \
    --species human --seed 1 --output "$WORK/store" > "$WORK/$name.log" 2>&1
  read -r secs kib < "$WORK/$name.time"
  echo "{\"table\": \"$name\", \"seconds\": $secs, \"peak_rss_mib\": $((kib / 1024))}"
}
run gene_family build-family --gene-has-family "$S/priors/hgnc_gene_groups/gene_has_family.csv.gz" \
  --gene-symbols "$S/priors/hgnc_gene_groups/gene_symbols.csv.gz"
run grn build-grn --edges "$S/priors/omnipath_transcriptional_tf_target.tsv.gz"
run co_exp build-coexp "$S/h5ad/wu2020_tcells_200.h5ad"
run promoter build-promoter --fasta "$WORK/promoters.fa"
