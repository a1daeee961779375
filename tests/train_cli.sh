#!/bin/sh
# `kiln train` end to end on a tiny IDX dataset made here (256 train / 64
# test 28x28 images; class k has a bright row at 2k+3, so it is learnable):
# epoch lines, progress lines, metrics CSV, SVG plot, checkpoint + resume
# giving the same numbers as the uninterrupted run, and one clear stderr line
# with exit status 2 (usage) or 1 (runtime) for each bad argument or file.
set -eu
build=$1
kiln="$build/kiln"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# ---- the dataset: IDX files (big-endian header, then raw bytes)
mkdir "$dir/data" "$dir/tpl"
k=0
while [ $k -lt 10 ]; do
    { head -c $((28 * (2 * k + 3))) /dev/zero
      head -c 28 /dev/zero | tr '\000' '\377'
      head -c $((784 - 28 * (2 * k + 4))) /dev/zero; } > "$dir/tpl/$k"
    k=$((k + 1))
done
make_split() { # prefix count count-as-4-octal-escapes
    printf '\000\000\010\003'"$3"'\000\000\000\034\000\000\000\034' > "$dir/data/$1-images-idx3-ubyte"
    printf '\000\000\010\001'"$3" > "$dir/data/$1-labels-idx1-ubyte"
    i=0
    while [ $i -lt "$2" ]; do
        c=$(( (i * 7 + 3) % 10 ))
        cat "$dir/tpl/$c" >> "$dir/data/$1-images-idx3-ubyte"
        printf "\\$(printf '%03o' $c)" >> "$dir/data/$1-labels-idx1-ubyte"
        i=$((i + 1))
    done
}
make_split train 256 '\000\000\001\000'
make_split t10k 64 '\000\000\000\100'
[ "$(wc -c < "$dir/data/train-images-idx3-ubyte")" -eq $((16 + 256 * 784)) ] || fail "IDX size"

# ---- kiln info lists the optional parts and the models
"$kiln" info > "$dir/info.txt"
grep -q "^optional parts: zlib (gzip datasets) \(yes\|no\), ONNX \(yes\|no\), oneDNN no, MPI no$" "$dir/info.txt" ||
    fail "info: optional parts"
grep -q "^models: .*mlp" "$dir/info.txt" || fail "info: models"

# ---- --help
"$kiln" train --help > "$dir/help.txt" || fail "--help exit status"
grep -q "^usage: kiln train --model NAME --data DIR" "$dir/help.txt" || fail "--help text"
grep -q -- "--resume" "$dir/help.txt" || fail "--help lists --resume"

# ---- a run: 2 epochs with checkpoints, stdout is not a terminal
common="--model mlp --data $dir/data --epochs 2 --batch-size 32 --limit 200 --seed 7 --workers 1"
"$kiln" train $common --checkpoint "$dir/ck1" --metrics "$dir/m1.csv" --plot "$dir/m1.svg" \
    > "$dir/out1.txt" || { cat "$dir/out1.txt"; fail "training run"; }
cat "$dir/out1.txt"
grep -q "^training mlp on mnist (guessed from the files): 200 train / 64 test samples, batch 32" \
    "$dir/out1.txt" || fail "header line"
for e in 1 2; do
    grep -Eq "^epoch $e/2  train loss [0-9]+\.[0-9]{3}  train acc [01]\.[0-9]{3}  test acc [01]\.[0-9]{3}  [0-9]+\.[0-9] s$" \
        "$dir/out1.txt" || fail "epoch line $e"
done
# plain progress lines at 25/50/75% of the 7 batches
grep -Eq "^epoch 1/2  +28%  2/7 batches  [0-9]+ items/s  ETA [0-9:]+  loss [0-9.]+$" "$dir/out1.txt" ||
    fail "progress line"
[ "$(grep -c '^epoch 2/2 .*batches' "$dir/out1.txt")" -eq 3 ] || fail "three progress lines"
grep -q "$(printf '\r')" "$dir/out1.txt" && fail "carriage return without a terminal"
tail -n 1 "$dir/out1.txt" | grep -qx "metrics: $dir/m1.csv  plot: $dir/m1.svg" || fail "last line"

# the CSV: header and one row per epoch
[ "$(head -n 1 "$dir/m1.csv")" = "epoch,train_loss,train_acc,test_acc,lr,seconds" ] || fail "CSV header"
[ "$(wc -l < "$dir/m1.csv")" -eq 3 ] || fail "CSV rows"
awk -F, 'NR > 1 && (NF != 6 || $1 != NR - 1 || $2 <= 0 || $3 < 0 || $3 > 1 || $5 <= 0) { exit 1 }' \
    "$dir/m1.csv" || fail "CSV fields"
# learnable data: the loss falls and the test accuracy is well above chance
awk -F, 'NR == 2 { l1 = $2 } NR == 3 { if (!($2 < l1 && $4 >= 0.5)) exit 1 }' "$dir/m1.csv" ||
    { cat "$dir/m1.csv"; fail "did not learn"; }
# the epoch lines and the CSV agree
awk -F, 'NR == 3 { printf "train loss %.3f  train acc %.3f  test acc %.3f\n", $2, $3, $4 }' \
    "$dir/m1.csv" > "$dir/want.txt"
grep -qF "$(cat "$dir/want.txt")" "$dir/out1.txt" || fail "epoch line differs from the CSV"

# the SVG: one document with axes, series and legend
head -n 1 "$dir/m1.svg" | grep -q '^<?xml' || fail "SVG prolog"
[ "$(grep -c '<svg ' "$dir/m1.svg")" -eq 1 ] && [ "$(grep -c '</svg>' "$dir/m1.svg")" -eq 1 ] ||
    fail "SVG root"
[ "$(grep -c '<polyline' "$dir/m1.svg")" -eq 3 ] || fail "SVG: three series"
for t in "train loss" "train acc" "test acc" ">epoch<" ">accuracy<"; do
    grep -q "$t" "$dir/m1.svg" || fail "SVG text $t"
done
[ "$(grep -c '<' "$dir/m1.svg")" -eq "$(grep -c '>' "$dir/m1.svg")" ] || fail "SVG tags"

# checkpoint files
[ -s "$dir/ck1/last.safetensors" ] || fail "no checkpoint"
grep -q '"epoch": 2,' "$dir/ck1/state.json" || fail "state.json epoch"
grep -q '"model": "mlp"' "$dir/ck1/state.json" || fail "state.json model"

# ---- interrupted after epoch 1, then resumed: the same numbers
"$kiln" train $common --checkpoint "$dir/ck2" --stop-after 1 --quiet > "$dir/out2.txt"
grep -q '"epoch": 1,' "$dir/ck2/state.json" || fail "state after --stop-after"
[ "$(wc -l < "$dir/ck2/metrics.csv")" -eq 2 ] || fail "CSV after --stop-after"
"$kiln" train $common --checkpoint "$dir/ck2" --resume > "$dir/out3.txt"
grep -q "^resuming after epoch 1$" "$dir/out3.txt" || fail "resume message"
grep -q "^epoch 1/2 " "$dir/out3.txt" && fail "resume trained epoch 1 again"
cut -d, -f1-5 "$dir/m1.csv" > "$dir/a.csv"
cut -d, -f1-5 "$dir/ck2/metrics.csv" > "$dir/b.csv"
cmp "$dir/a.csv" "$dir/b.csv" || { cat "$dir/a.csv" "$dir/b.csv"; fail "resumed run differs"; }
cmp "$dir/ck1/last.safetensors" "$dir/ck2/last.safetensors" || fail "resumed parameters differ"

# ---- hybridized: the same training run compiled
"$kiln" train $common --hybridize --quiet --metrics "$dir/h.csv" --plot "$dir/h.svg" > "$dir/out4.txt"
grep -q "^epoch 2/2  train loss" "$dir/out4.txt" || fail "hybridized run"
[ "$(wc -l < "$dir/out4.txt")" -eq 3 ] || fail "--quiet prints the epoch lines and the last line"

# ---- errors: exactly one line on stderr, "kiln train: ...", and the status
expect() { # status message-fragment args...
    want=$1 msg=$2
    shift 2
    set +e
    "$kiln" train "$@" > "$dir/stdout.txt" 2> "$dir/stderr.txt"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat "$dir/stderr.txt"; fail "status $got, expected $want: $*"; }
    [ "$(wc -l < "$dir/stderr.txt")" -eq 1 ] || { cat "$dir/stderr.txt"; fail "not one line: $*"; }
    grep -q "^kiln train: " "$dir/stderr.txt" || { cat "$dir/stderr.txt"; fail "prefix: $*"; }
    grep -qF -- "$msg" "$dir/stderr.txt" || { cat "$dir/stderr.txt"; fail "message '$msg': $*"; }
}
d="--data $dir/data"
expect 2 "unknown option '--frobnicate'" --model mlp $d --frobnicate
expect 2 "unexpected argument 'extra'" --model mlp $d extra
expect 2 "--epochs needs a value" --model mlp $d --epochs
expect 2 "--epochs needs a value" --model mlp --epochs $d
expect 2 "--epochs: 'two' is not an integer" --model mlp $d --epochs two
expect 2 "--epochs 0 is out of range" --model mlp $d --epochs 0
expect 2 "--batch-size: '3x' is not an integer" --model mlp $d --batch-size 3x
expect 2 "--lr: 'fast' is not a number" --model mlp $d --lr fast
expect 2 "--lr 0 is out of range: expected (0, 100]" --model mlp $d --lr 0
expect 2 "--momentum 1.5 is out of range" --model mlp $d --momentum 1.5
expect 2 "--weight-decay -1 is out of range" --model mlp $d --weight-decay -1
expect 2 "--workers 65 is out of range" --model mlp $d --workers 65
expect 2 "--threads 0 is out of range" --model mlp $d --threads 0
expect 2 "--limit 0 is out of range" --model mlp $d --limit 0
expect 2 "--hybridize takes no value" --model mlp $d --hybridize=yes
expect 2 "unknown model 'nosuchnet' (known: " --model nosuchnet $d
expect 2 "unknown optimizer 'adamax'" --model mlp $d --optimizer adamax
expect 2 "unknown dataset 'imagenet'" --model mlp $d --dataset imagenet
expect 2 "unknown schedule 'linear'" --model mlp $d --schedule linear
expect 2 "--momentum applies to sgd and rmsprop, not adam" --model mlp $d --optimizer adam --momentum 0.5
expect 2 "--model NAME is required" $d
expect 2 "--data DIR is required" --model mlp
expect 2 "--resume needs --checkpoint DIR" --model mlp $d --resume
expect 1 "--data $dir/nowhere: no such directory" --model mlp --data "$dir/nowhere"
mkdir "$dir/empty"
expect 1 "cannot tell the dataset in $dir/empty" --model mlp --data "$dir/empty"
expect 1 "cifar10 data in $dir/data" --model mlp $d --dataset cifar10
head -c 1000 "$dir/data/train-images-idx3-ubyte" > "$dir/empty/train-images-idx3-ubyte"
cp "$dir/data/train-labels-idx1-ubyte" "$dir/empty/"
expect 1 "data in $dir/empty" --model mlp --data "$dir/empty" --dataset mnist
expect 1 "--resume: no run to continue in $dir/empty" --model mlp $d --checkpoint "$dir/empty" --resume
expect 1 "is of model mlp, not lenet" --model lenet $d --checkpoint "$dir/ck1" --resume
expect 1 "was trained with --optimizer sgd, not adam" --model mlp $d --optimizer adam \
    --checkpoint "$dir/ck1" --resume
expect 1 "was trained with --seed 7, not 8" $common --seed 8 --checkpoint "$dir/ck1" --resume
cp -r "$dir/ck1" "$dir/ck3"
head -c 100 "$dir/ck1/last.safetensors" > "$dir/ck3/last.safetensors"
expect 1 "--resume: " $common --checkpoint "$dir/ck3" --resume
echo '{"format": "something else"}' > "$dir/ck3/state.json"
expect 1 "is not a kiln train state" $common --checkpoint "$dir/ck3" --resume
echo "kiln train CLI test: ok"
