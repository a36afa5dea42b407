#!/usr/bin/env bash
# Bring up what the Docker tests and `inv build-push` need, idempotently:
#   1. Debian's docker.io, docker-registry, debootstrap and apache2-utils (htpasswd),
#      installed only when missing;
#   2. a Docker engine (dockerd), started when none answers, and waited for;
#   3. a registry on 127.0.0.1:5000 (CONTAINER_REGISTRY=localhost:5000), started
#      when nothing listens there.
# Run it as root (CI does). Logs: /tmp/hk-dockerd.log, /tmp/hk-registry.log.
set -euo pipefail

REGISTRY_ADDR="${HK_CI_REGISTRY_ADDR:-127.0.0.1:5000}"
REGISTRY_DIR="${HK_CI_REGISTRY_DIR:-/var/lib/hello-kubeflow-registry}"
DOCKER_WAIT_SECONDS=60
REGISTRY_WAIT_SECONDS=30

log() { echo "ci_docker: $*"; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The engine: start it detached (own session, no inherited stdio) so this script
# and whatever called it can exit while it keeps running.
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    setsid nohup dockerd >/tmp/hk-dockerd.log 2>&1 </dev/null &
    for ((i = 0; i < DOCKER_WAIT_SECONDS; i++)); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || {
        log "dockerd did not answer within ${DOCKER_WAIT_SECONDS}s:"; tail -n 30 /tmp/hk-dockerd.log; exit 1; }
fi
log "docker engine $(docker version -f '{{.Server.Version}}') is up"

listening() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
if ! listening "$REGISTRY_ADDR"; then
    log "starting a registry on $REGISTRY_ADDR (storage $REGISTRY_DIR)"
    mkdir -p "$REGISTRY_DIR"
    config="$REGISTRY_DIR/config.yml"
    cat >"$config" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YAML
    setsid nohup docker-registry serve "$config" >/tmp/hk-registry.log 2>&1 </dev/null &
    for ((i = 0; i < REGISTRY_WAIT_SECONDS; i++)); do
        listening "$REGISTRY_ADDR" && break
        sleep 1
    done
    listening "$REGISTRY_ADDR" || {
        log "the registry did not listen within ${REGISTRY_WAIT_SECONDS}s:"; tail -n 30 /tmp/hk-registry.log; exit 1; }
fi
log "registry on $REGISTRY_ADDR is up"
