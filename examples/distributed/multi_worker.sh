#!/usr/bin/env bash
# One trial across two processes: a chief serving the strategy, and a
# MultiWorkerMirroredStrategy cluster of two worker processes (TF_CONFIG)
# that trains each trial together under one worker name. On real machines
# each cluster member runs on its own host with its own GPUs.
#
#   bash examples/distributed/multi_worker.sh [tfnas search arguments...]
set -euo pipefail
TFNAS="${TFNAS:-tfnas}"
CHIEF=127.0.0.1:8470
CLUSTER='"worker": ["127.0.0.1:8471", "127.0.0.1:8472"]'

"$TFNAS" search --space mlp --strategy evolution --max-trials 6 --epochs 2 "$@" \
  --chief --address "$CHIEF" &
chief=$!
for index in 0 1; do
  TF_CONFIG="{\"cluster\": {$CLUSTER}, \"task\": {\"type\": \"worker\", \"index\": $index}}" \
    "$TFNAS" search --space mlp --strategy evolution --max-trials 6 --epochs 2 "$@" \
    --worker cluster0 --address "$CHIEF" --no-progress > /dev/null &
done
wait "$chief"
wait
