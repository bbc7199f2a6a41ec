#!/usr/bin/env bash
# A chief and two workers of `search.py` on this machine, started by hand
# with KerasTuner's environment variables (what `tfnas search --workers 2`
# does for you). On several machines, give the chief's private address to
# KERASTUNER_ORACLE_IP instead of 127.0.0.1, and protect the channel with
# TFNAS_TLS_CERT/TFNAS_TLS_KEY (chief), TFNAS_TLS_CA (workers) and a shared
# TFNAS_TOKEN_FILE or TFNAS_TOKEN (all): without them the gRPC channel is
# unauthenticated, so keep it on a trusted network.
#
#   bash examples/distributed/local_cluster.sh [search.py arguments...]
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
export KERASTUNER_ORACLE_IP=127.0.0.1
export KERASTUNER_ORACLE_PORT="${KERASTUNER_ORACLE_PORT:-8470}"

KERASTUNER_TUNER_ID=chief "$PYTHON" search.py "$@" &
chief=$!
for name in worker0 worker1; do
  KERASTUNER_TUNER_ID=$name "$PYTHON" search.py "$@" > /dev/null &
done
wait "$chief"  # the chief returns once every worker is done
wait
