#!/bin/sh
# Flows on a Prefect work pool (`make worker`; compose.yaml's worker service): create the `fraudops`
# process pool, deploy prefect.yaml's two deployments to it, then run a process worker that executes
# their runs (the monitoring schedule and any training run asked for) until it is stopped.
#
# The deployments live on the Prefect server, so PREFECT_API_URL must name one: a worker against a
# temporary server would run nothing anyone asked for. Each flow run is a child process of the worker
# in FRAUDOPS_PROJECT_DIR (default: the current folder), the project whose data and stores it uses.
# Arguments go to `prefect worker start` (--run-once: one polling pass, then exit). Running it again is
# safe: the pool and the deployments are updated in place.
set -eu
if [ -z "${PREFECT_API_URL:-}" ]; then
  echo "worker: PREFECT_API_URL is not set. Point it at a Prefect server, for example" >&2
  echo "  PREFECT_API_URL=http://127.0.0.1:4200/api make worker   (start one with: make prefect-ui)" >&2
  exit 2
fi
FRAUDOPS_PROJECT_DIR="${FRAUDOPS_PROJECT_DIR:-$(pwd)}"
export FRAUDOPS_PROJECT_DIR
cd "$FRAUDOPS_PROJECT_DIR"
prefect_file="${FRAUDOPS_PREFECT_FILE:-$FRAUDOPS_PROJECT_DIR/prefect.yaml}"
if [ ! -f "$prefect_file" ]; then
  echo "worker: no $prefect_file: run it in the project folder or set FRAUDOPS_PREFECT_FILE" >&2
  exit 2
fi
echo "worker: work pool 'fraudops' (process) on $PREFECT_API_URL"
prefect work-pool create fraudops --type process --overwrite
echo "worker: deploying $prefect_file"
prefect --no-prompt deploy --all --prefect-file "$prefect_file"
echo "worker: running the pool's flow runs in $FRAUDOPS_PROJECT_DIR until stopped (Ctrl-C)"
exec prefect worker start --pool fraudops "$@"
