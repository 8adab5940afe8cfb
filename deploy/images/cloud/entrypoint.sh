#!/bin/sh
# Secrets from files: for every variable NAME_FILE=/path, export NAME with the file's content and drop
# NAME_FILE (cardiogate's settings reject unknown CARDIOGATE_CLOUD__* names). Then run the command.
# docker compose mounts its secrets under /run/secrets; Kubernetes sets the variables directly.
set -eu
for pair in $(env | grep -E '^[A-Z0-9_]+_FILE=' | cut -d= -f1); do
    name=${pair%_FILE}
    eval "path=\${$pair}"
    if [ ! -r "$path" ]; then
        echo "cardiogate-entrypoint: $pair names $path, which cannot be read" >&2
        exit 78
    fi
    value=$(cat "$path")
    export "$name=$value"
    unset "$pair"
done
exec "$@"
