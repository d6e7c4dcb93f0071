#!/bin/sh
# Entry point of compose.yaml's fraudops services that share the `workspace` volume (setup, api,
# worker, demo): make the volume a project the pipelines can run in, then run the command there.
#
# The first service to start copies the image's project files (code, params.yaml, dvc.yaml, DVC's
# config, prefect.yaml) into the volume and makes it a git repository with one commit, because DVC versions data
# inside a git repository and training records the commit. Later starts find it and keep it: the
# volume holds the data, DVC's cache and remote, the prediction log, the clock and the reports, and
# `docker compose down -v` removes it.
set -eu
ws="${FRAUDOPS_PROJECT_DIR:-/workspace}"
# compose passes an unset key as an empty string, which would hide the one in the workspace's .env
for name in FRAUDOPS_ADMIN_API_KEY FRAUDOPS_FEEDBACK_API_KEY; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || unset "$name"
done
if [ ! -d "$ws/.git" ]; then
  echo "workspace: preparing $ws from the image's project files"
  for item in pyproject.toml README.md params.yaml dvc.yaml prefect.yaml .dvc .dvcignore .gitignore data \
      core pipelines serving monitoring fraudops; do
    [ -e "/app/$item" ] && cp -R "/app/$item" "$ws/"
  done
  git -C "$ws" init -q
  git -C "$ws" add -A
  git -C "$ws" -c user.name=fraudops -c user.email=fraudops@localhost commit -qm "fraudops image"
fi
cd "$ws"
exec "$@"
