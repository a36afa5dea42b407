#!/usr/bin/env bash
# The whole chapter on a real cluster, one command: a kind cluster with a local
# registry its node pulls from, then exactly what a user runs (inv setup, build-push,
# train, query, undeploy), a timing table, the cluster's state collected on failure,
# and the cluster and registry deleted at the end (unless --keep).
#
# Needs Docker (4 CPUs, 8 GiB), kind, kubectl, network, and the project installed
# (python3 -m venv .venv && .venv/bin/pip install -e .). Run from anywhere:
#
#   scripts/e2e_kind.sh [--serving seldon|kserve] [--keep] [--dry-run]
#                       [--name NAME] [--registry-port PORT] [--artifacts DIR]
#   scripts/e2e_kind.sh --install-tools DIR [--dry-run]
#
# --dry-run prints every command, in order, with the pinned versions, and needs none
# of the tools. docs/cluster.md ("End-to-end on kind") says what a run proves.
set -euo pipefail

# ---- pinned versions: those kubeflow/manifests tag 26.03 tests its own kind setup with
# (tests/install_KinD_create_KinD_cluster_install_kustomize.sh: KIND_VERSION and each
# node's image); the image digest is also kind v0.30.0's default
# (kubernetes-sigs/kind, v0.30.0, pkg/apis/config/defaults/image.go).
KIND_VERSION=v0.30.0
NODE_IMAGE=kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a
# kubectl of the node's minor version (Kubernetes' version skew policy: within one minor).
KUBECTL_VERSION=v1.34.0
# kind's local-registry recipe runs `registry:2` (kubernetes-sigs/kind, v0.30.0,
# site/static/examples/kind-with-registry.sh); here pinned to a release of it.
REGISTRY_IMAGE=registry:2.8.3

# What the 'pipelines' profile wants from the cluster: the package's own figure
# (hello_kubeflow/install/prereqs.py, REQUIREMENTS["pipelines"]). A kind node gets the
# whole Docker host, so the host is what is checked.
MIN_CPUS=4
MIN_MEMORY_GIB=8
# inotify limits kubeflow/manifests 26.03's README asks for ("Install with a Single
# Command", Prerequisites), as `inv setup` checks them (hello_kubeflow/install/inotify.py);
# above what kind itself documents (kubernetes-sigs/kind v0.30.0,
# site/content/docs/user/known-issues.md, "Pod errors due to too many open files").
MIN_INOTIFY_WATCHES=1255360
MIN_INOTIFY_INSTANCES=2280
# The service-account issuer kubeflow/manifests 26.03 gives its kind API server, so
# that Kubernetes service-account tokens log in (HK_KFP_TOKEN) as on the full platform
# (tests/install_KinD_create_KinD_cluster_install_kustomize.sh, kubeadmConfigPatches;
# common/oauth2-proxy/overlays/m2m-dex-and-kind/kustomization.yaml trusts it).
SA_ISSUER=https://kubernetes.default.svc
KIND_CREATE_WAIT=180s
KUBECTL_TIMEOUT=30s

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "e2e_kind: error: $*" >&2
    exit 1
}

# ---- options
SERVING=seldon
KEEP=0
DRY_RUN=0
NAME=hello-kubeflow-e2e
REGISTRY_PORT=5001
ARTIFACTS=""
INSTALL_DIR=""
# The value of an option given as `--option VALUE`.
value_of() {
    (($# >= 2)) && [[ "$2" != --* ]] || die "$1 needs a value (see --help)"
    echo "$2"
}
while (($#)); do
    case "$1" in
        --serving=*) SERVING="${1#*=}" ;;
        --serving) SERVING="$(value_of "$@")"; shift ;;
        --name=*) NAME="${1#*=}" ;;
        --name) NAME="$(value_of "$@")"; shift ;;
        --registry-port=*) REGISTRY_PORT="${1#*=}" ;;
        --registry-port) REGISTRY_PORT="$(value_of "$@")"; shift ;;
        --artifacts=*) ARTIFACTS="${1#*=}" ;;
        --artifacts) ARTIFACTS="$(value_of "$@")"; shift ;;
        --install-tools=*) INSTALL_DIR="${1#*=}" ;;
        --install-tools) INSTALL_DIR="$(value_of "$@")"; shift ;;
        --keep) KEEP=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case "$SERVING" in
    seldon | kserve) ;;
    *) die "--serving must be seldon or kserve, not '$SERVING'" ;;
esac
[[ "$NAME" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] ||
    die "--name '$NAME' is not a valid kind cluster name: lowercase letters, digits and '-'"
if ! [[ "$REGISTRY_PORT" =~ ^[0-9]{4,5}$ ]] || ((REGISTRY_PORT < 1024 || REGISTRY_PORT > 65535)); then
    die "--registry-port must be a port number from 1024 to 65535, not '$REGISTRY_PORT'"
fi

REGISTRY_NAME="$NAME-registry"
CONTEXT="kind-$NAME"
NODE_NAME="$NAME-control-plane" # the one node of a single-node kind cluster

# ---- printing and running commands

# One command as a shell line: what --dry-run prints and what a run logs.
show() {
    local line="\$" arg
    for arg in "$@"; do
        if [[ "$arg" =~ ^[-A-Za-z0-9_./:=@,+%]+$ ]]; then
            line+=" $arg"
        else
            line+=" '${arg//\'/\'\\\'\'}'"
        fi
    done
    echo "$line"
}

# Run a command (print it first); in a dry run, only print it.
run() {
    show "$@"
    ((DRY_RUN)) || "$@"
}

# Run a command with TEXT on its standard input; a dry run prints the text too.
run_with_input() {
    local text="$1"
    shift
    show "$@"
    if ((DRY_RUN)); then
        local line
        while IFS= read -r line; do echo "      | $line"; done <<<"$text"
    else
        "$@" <<<"$text"
    fi
}

# ---- installing the pinned tools (--install-tools DIR)

install_tools() {
    local dir="$1" os arch sum
    case "$(uname -s)" in
        Linux) os=linux ;;
        Darwin) os=darwin ;;
        *) die "--install-tools knows Linux and macOS only; see https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) die "--install-tools knows amd64 and arm64 only, not $(uname -m)" ;;
    esac
    if command -v sha256sum >/dev/null 2>&1; then sum=(sha256sum); else sum=(shasum -a 256); fi
    if ! ((DRY_RUN)); then
        command -v curl >/dev/null 2>&1 || die "curl is needed to download kind and kubectl"
    fi
    echo "installing kind $KIND_VERSION and kubectl $KUBECTL_VERSION ($os/$arch) into $dir, checksums verified"
    local kind_url="https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-$os-$arch"
    local kubectl_url="https://dl.k8s.io/release/$KUBECTL_VERSION/bin/$os/$arch/kubectl"
    run mkdir -p "$dir"
    run curl -fsSL --retry 3 -o "$dir/kind" "$kind_url"
    run curl -fsSL --retry 3 -o "$dir/kind.sha256sum" "$kind_url.sha256sum"
    run curl -fsSL --retry 3 -o "$dir/kubectl" "$kubectl_url"
    run curl -fsSL --retry 3 -o "$dir/kubectl.sha256" "$kubectl_url.sha256"
    if ((DRY_RUN)); then
        show cd "$dir"
        run_with_input "<the hash in kind.sha256sum>  kind"$'\n'"<the hash in kubectl.sha256>  kubectl" \
            "${sum[@]}" --check
    else
        (cd "$dir" && echo "$(cut -d' ' -f1 kind.sha256sum)  kind" | "${sum[@]}" --check) ||
            die "kind's checksum does not match $kind_url.sha256sum"
        (cd "$dir" && echo "$(cat kubectl.sha256)  kubectl" | "${sum[@]}" --check) ||
            die "kubectl's checksum does not match $kubectl_url.sha256"
    fi
    run chmod +x "$dir/kind" "$dir/kubectl"
    run rm -f "$dir/kind.sha256sum" "$dir/kubectl.sha256"
    ((DRY_RUN)) || echo "done: put $dir on PATH (export PATH=\"$dir:\$PATH\")"
}

if [[ -n "$INSTALL_DIR" ]]; then
    install_tools "$INSTALL_DIR"
    exit 0
fi

# ---- what the run uses

if [[ -z "$ARTIFACTS" ]]; then
    ARTIFACTS="$ROOT/outputs/e2e-kind/$(date -u +%Y%m%dT%H%M%SZ)-$SERVING"
fi
[[ "$ARTIFACTS" = /* ]] || ARTIFACTS="$PWD/$ARTIFACTS"
# Beside the folder, not in it: the folder is uploaded, credentials must not be.
KUBECONFIG_FILE="$ROOT/outputs/e2e-kind/$NAME.kubeconfig"
if [[ -x "$ROOT/.venv/bin/inv" ]]; then INV="$ROOT/.venv/bin/inv"; else INV=inv; fi
KUBECTL=(kubectl --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT" --request-timeout="$KUBECTL_TIMEOUT")

# The settings every inv step runs with (the environment wins over a .env file):
# this cluster, this registry, the 'pipelines' profile, the chosen serving system.
# Whatever would point the steps at another cluster, endpoint or image is cleared.
INV_ENV=(
    "KUBECONFIG=$KUBECONFIG_FILE"
    "HK_KUBE_CONTEXT=$CONTEXT"
    "HK_MODE=cluster"
    "HK_PROFILE=pipelines"
    "HK_SERVING=$SERVING"
    "CONTAINER_REGISTRY=localhost:$REGISTRY_PORT"
    "HK_OUTPUT_DIR=$ARTIFACTS/outputs"
    "HK_NAMESPACE=kubeflow"
    "HK_PIPELINE_IMAGE="
    "HK_KFP_ENDPOINT="
    "HK_GATEWAY_URL="
    "HK_KFP_TOKEN="
    "HK_KFP_COOKIE="
)

KIND_CONFIG="kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
# One node: it gets the whole Docker host, which is what the profile is sized by.
nodes:
  - role: control-plane
    image: $NODE_IMAGE
# kind's local-registry recipe: containerd reads per-registry hosts.toml files.
containerdConfigPatches:
  - |-
    [plugins.\"io.containerd.grpc.v1.cri\".registry]
      config_path = \"/etc/containerd/certs.d\"
# The manifests' service-account issuer. No apiVersion, so that kind applies it to
# the kubeadm config version it generates (kind v0.30.0 matches a patch's apiVersion
# exactly: pkg/internal/patch/resource.go; it writes kubeadm.k8s.io/v1beta3).
kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
      extraArgs:
        service-account-issuer: $SA_ISSUER
        service-account-signing-key-file: /etc/kubernetes/pki/sa.key"

HOSTS_TOML="[host.\"http://$REGISTRY_NAME:5000\"]"

LOCAL_REGISTRY_HOSTING="apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: \"localhost:$REGISTRY_PORT\"
    help: \"https://kind.sigs.k8s.io/docs/user/local-registry/\""

# ---- checks before anything is created

INSTALL_HINT_KIND="install kind $KIND_VERSION: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or \`go install sigs.k8s.io/kind@$KIND_VERSION\`)"
INSTALL_HINT_KUBECTL="install kubectl $KUBECTL_VERSION: https://kubernetes.io/docs/tasks/tools/#kubectl"
INSTALL_HINT_DOCKER="install Docker: https://docs.docker.com/engine/install/"
INSTALL_HINT_INV="install the project: cd $ROOT && python3 -m venv .venv && .venv/bin/pip install -e ."

check_tools() {
    local missing=()
    command -v docker >/dev/null 2>&1 || missing+=("docker is not installed (or not on PATH): $INSTALL_HINT_DOCKER")
    command -v kind >/dev/null 2>&1 || missing+=("kind is not installed (or not on PATH): $INSTALL_HINT_KIND")
    command -v kubectl >/dev/null 2>&1 || missing+=("kubectl is not installed (or not on PATH): $INSTALL_HINT_KUBECTL")
    command -v "$INV" >/dev/null 2>&1 || missing+=("inv (the project's tasks) is not installed: $INSTALL_HINT_INV")
    if ((${#missing[@]})); then
        {
            echo "e2e_kind: error: missing tools; nothing was created."
            printf '  - %s\n' "${missing[@]}"
            echo "  kind and kubectl at the pinned versions: $0 --install-tools ~/.local/bin"
        } >&2
        exit 1
    fi
}

check_docker() {
    local info cpus mem_bytes mem_gib
    info="$(docker info --format '{{.NCPU}} {{.MemTotal}}' 2>&1)" ||
        die "the Docker engine does not answer (\`docker info\`: ${info##*$'\n'}). Start Docker, or check DOCKER_HOST and your permission to use it."
    read -r cpus mem_bytes <<<"$info"
    mem_gib=$((mem_bytes / 1024 / 1024 / 1024))
    # 8 GiB of RAM shows as a little less once the kernel has its share: allow 10%.
    if ((cpus < MIN_CPUS || mem_bytes < MIN_MEMORY_GIB * 1024 * 1024 * 1024 * 9 / 10)); then
        die "Docker has $cpus CPUs and about $mem_gib GiB of memory; the 'pipelines' profile wants $MIN_CPUS CPUs and $MIN_MEMORY_GIB GiB. Give Docker more (Docker Desktop: Settings > Resources) or use a bigger machine."
    fi
    echo "docker: $cpus CPUs, about $mem_gib GiB of memory (the profile wants $MIN_CPUS and $MIN_MEMORY_GIB)"
}

# The limits of the kernel the kind node will run on: the Docker host's (a VM with
# Docker Desktop, another machine with a remote DOCKER_HOST). inotify limits are not
# namespaced, so a container reads the host's; the registry's image is pulled anyway.
INOTIFY_READ=(docker run --rm --entrypoint cat "$REGISTRY_IMAGE"
    /proc/sys/fs/inotify/max_user_watches /proc/sys/fs/inotify/max_user_instances)

check_inotify() {
    local found watches instances
    # stdout only: a first run's pull progress goes to stderr.
    if ! found="$("${INOTIFY_READ[@]}" 2>/dev/null)"; then
        found="$("${INOTIFY_READ[@]}" 2>&1 || true)"
        die "could not read the Docker host's inotify limits (\`${INOTIFY_READ[*]}\`): $found"
    fi
    { read -r watches && read -r instances; } <<<"$found"
    [[ "$watches" =~ ^[0-9]+$ && "$instances" =~ ^[0-9]+$ ]] ||
        die "could not read the Docker host's inotify limits (\`${INOTIFY_READ[*]}\`): $found"
    if ((watches < MIN_INOTIFY_WATCHES || instances < MIN_INOTIFY_INSTANCES)); then
        die "the Docker host's inotify limits are too low for a kind cluster (max_user_watches=$watches, max_user_instances=$instances): pods would fail with 'too many open files'. On the Docker host: sudo sysctl fs.inotify.max_user_watches=$MIN_INOTIFY_WATCHES fs.inotify.max_user_instances=$MIN_INOTIFY_INSTANCES"
    fi
    echo "inotify: max_user_watches=$watches, max_user_instances=$instances (kubeflow/manifests wants $MIN_INOTIFY_WATCHES and $MIN_INOTIFY_INSTANCES)"
}

check_free() {
    if kind get clusters 2>/dev/null | grep -x "$NAME" >/dev/null; then
        die "a kind cluster named '$NAME' exists already (an earlier --keep run?). Delete it (kind delete cluster --name $NAME) or pass --name."
    fi
    if docker inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
        die "a container named '$REGISTRY_NAME' exists already. Remove it (docker rm -f $REGISTRY_NAME) or pass --name."
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null; then
        die "port $REGISTRY_PORT on 127.0.0.1 is in use: pass --registry-port with a free one."
    fi
}

# ---- steps, timed

STEP_NAMES=()
STEP_SECONDS=()
STEP_RESULTS=()
FAILED_STEP=""
STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
STARTED=$SECONDS

# Run one step (a command or a function), its output also written to logs/; a failing
# step ends the run (the EXIT trap collects, cleans up and prints the table).
step() {
    local name="$1" begun=$SECONDS rc log
    shift
    CURRENT_STEP="$name"
    echo
    echo "== $name"
    if ((DRY_RUN)); then
        "$@"
        return
    fi
    log="$ARTIFACTS/logs/$(printf '%02d' $((${#STEP_NAMES[@]} + 1)))-${name//[^a-zA-Z0-9]/-}.log"
    set +e
    (set -e; "$@") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    STEP_NAMES+=("$name")
    STEP_SECONDS+=($((SECONDS - begun)))
    if ((rc == 0)); then
        STEP_RESULTS+=(ok)
    else
        STEP_RESULTS+=("failed (exit $rc)")
        FAILED_STEP="$name"
        echo "e2e_kind: step '$name' failed (exit $rc); its output: $log" >&2
        exit 1
    fi
}

timing_table() {
    local i
    printf '%-34s %8s  %s\n' step seconds result
    for i in "${!STEP_NAMES[@]}"; do
        printf '%-34s %8d  %s\n' "${STEP_NAMES[$i]}" "${STEP_SECONDS[$i]}" "${STEP_RESULTS[$i]}"
    done
    printf '%-34s %8d  %s\n' total $((SECONDS - STARTED)) \
        "$(if [[ -n "$FAILED_STEP" ]]; then echo "FAILED at '$FAILED_STEP'"; else echo passed; fi)"
}

start_registry() {
    run docker run -d --restart=always -p "127.0.0.1:$REGISTRY_PORT:5000" --network bridge \
        --name "$REGISTRY_NAME" "$REGISTRY_IMAGE"
}

create_cluster() {
    ((DRY_RUN)) || printf '%s\n' "$KIND_CONFIG" >"$ARTIFACTS/kind-config.yaml"
    run_with_input "$KIND_CONFIG" kind create cluster --name "$NAME" --config=- \
        --kubeconfig "$KUBECONFIG_FILE" --wait "$KIND_CREATE_WAIT"
}

# kind's local-registry recipe, steps 3 to 5: localhost:PORT on every node is the
# registry container, which joins the kind network; the ConfigMap documents it.
connect_registry() {
    local nodes node dir="/etc/containerd/certs.d/localhost:$REGISTRY_PORT"
    show kind get nodes --name "$NAME"
    if ((DRY_RUN)); then nodes="$NODE_NAME"; else nodes="$(kind get nodes --name "$NAME")"; fi
    for node in $nodes; do
        run docker exec "$node" mkdir -p "$dir"
        run_with_input "$HOSTS_TOML" docker exec -i "$node" cp /dev/stdin "$dir/hosts.toml"
    done
    run docker network connect kind "$REGISTRY_NAME"
    run_with_input "$LOCAL_REGISTRY_HOSTING" "${KUBECTL[@]}" apply -f -
}

# The API server must name the issuer the manifests' kind setup gives it.
check_issuer() {
    local found
    run "${KUBECTL[@]}" get --raw /.well-known/openid-configuration
    ((DRY_RUN)) && { echo "      (expects \"issuer\":\"$SA_ISSUER\")"; return; }
    found="$("${KUBECTL[@]}" get --raw /.well-known/openid-configuration)"
    if ! [[ "$found" =~ \"issuer\"[[:space:]]*:[[:space:]]*\"$SA_ISSUER\" ]]; then
        echo "the API server's service-account issuer is not $SA_ISSUER: $found" >&2
        return 1
    fi
    echo "service-account issuer: $SA_ISSUER"
}

inv_step() {
    run "$INV" "$@"
}

# ---- on failure: what a maintainer needs, in one folder

collect() {
    local dir="$ARTIFACTS/cluster" ns pod phase ready restarts
    echo "collecting the cluster's state into $dir"
    mkdir -p "$dir/namespaces" "$dir/failed-pods"
    local k=("${KUBECTL[@]}")
    "${k[@]}" get nodes -o wide >"$dir/nodes.txt" 2>&1
    "${k[@]}" describe nodes >"$dir/nodes-describe.txt" 2>&1
    "${k[@]}" get pods -A -o wide >"$dir/pods.txt" 2>&1
    "${k[@]}" get events -A --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1
    "${k[@]}" get seldondeployments,inferenceservices -A -o yaml >"$dir/served-models.yaml" 2>&1
    "${k[@]}" get workflows.argoproj.io -A -o yaml >"$dir/argo-workflows.yaml" 2>&1
    # The cluster is this run's own: each of its namespaces is one we touched.
    for ns in $("${k[@]}" get namespaces -o jsonpath='{.items[*].metadata.name}' 2>/dev/null); do
        mkdir -p "$dir/namespaces/$ns"
        "${k[@]}" get pods -n "$ns" -o wide >"$dir/namespaces/$ns/pods.txt" 2>&1
        "${k[@]}" get events -n "$ns" --sort-by=.lastTimestamp >"$dir/namespaces/$ns/events.txt" 2>&1
        "${k[@]}" describe pods -n "$ns" >"$dir/namespaces/$ns/pods-describe.txt" 2>&1
    done
    # Pods not ready (other than completed ones) or restarted: all their containers' logs.
    "${k[@]}" get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.status.phase}{" "}{.status.containerStatuses[*].ready}{" |"}{.status.containerStatuses[*].restartCount}{"\n"}{end}' 2>/dev/null |
        while read -r ns pod phase ready; do
            restarts="${ready#*|}"
            ready="${ready%|*}"
            [[ "$phase" == Succeeded ]] && continue
            if [[ "$phase" == Running && "$ready" != *false* && ! "$restarts" =~ [1-9] ]]; then continue; fi
            echo "$ns/$pod ($phase)" >>"$dir/failed-pods/index.txt"
            "${k[@]}" logs -n "$ns" "$pod" --all-containers --prefix --timestamps --tail=5000 \
                >"$dir/failed-pods/$ns.$pod.log" 2>&1
            "${k[@]}" logs -n "$ns" "$pod" --all-containers --prefix --timestamps --tail=5000 --previous \
                >"$dir/failed-pods/$ns.$pod.previous.log" 2>&1 || rm -f "$dir/failed-pods/$ns.$pod.previous.log"
        done
    "$INV" status >"$dir/inv-status.txt" 2>&1
    kind export logs "$ARTIFACTS/kind-logs" --name "$NAME" >/dev/null 2>&1
}

run_details() {
    echo "hello-kubeflow end-to-end on kind"
    echo "started:   $STARTED_AT"
    echo "finished:  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "result:    $(if [[ -n "$FAILED_STEP" ]]; then echo "FAILED at '$FAILED_STEP'"; else echo passed; fi)"
    echo "commit:    $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "serving:   $SERVING (profile pipelines)"
    echo "cluster:   $NAME (context $CONTEXT, kubeconfig $KUBECONFIG_FILE)"
    echo "registry:  $REGISTRY_NAME ($REGISTRY_IMAGE) on localhost:$REGISTRY_PORT"
    echo "pinned:    kind $KIND_VERSION, node $NODE_IMAGE, kubectl $KUBECTL_VERSION"
    echo "found:     $(kind version 2>&1); kubectl $(kubectl version --client 2>&1 | sed -n 1p)"
    echo "docker:    $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>&1)"
    echo "host:      $(uname -srm)"
    echo "inv:       $INV"
    echo "settings of the inv steps:"
    printf '  %s\n' "${INV_ENV[@]}"
    echo
    timing_table
}

CLUSTER_CREATED=0
REGISTRY_CREATED=0
CURRENT_STEP=""

finish() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((rc != 0)) && [[ -z "$FAILED_STEP" ]]; then FAILED_STEP="${CURRENT_STEP:-interrupted}"; fi
    if ((rc != 0 && CLUSTER_CREATED)); then collect; fi
    if ((KEEP)); then
        echo
        echo "kept (--keep): cluster $NAME (export KUBECONFIG=$KUBECONFIG_FILE), registry $REGISTRY_NAME."
        echo "delete them: kind delete cluster --name $NAME && docker rm -f $REGISTRY_NAME"
    elif ((CLUSTER_CREATED || REGISTRY_CREATED)); then
        local begun=$SECONDS ok=ok
        echo
        echo "== delete the cluster and the registry"
        if ((CLUSTER_CREATED)); then
            run kind delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_FILE" || ok=failed
        fi
        # The name was free at the start: a container of that name is this run's.
        if ((REGISTRY_CREATED)) && docker inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
            run docker rm -f "$REGISTRY_NAME" || ok=failed
        fi
        STEP_NAMES+=("delete cluster and registry")
        STEP_SECONDS+=($((SECONDS - begun)))
        STEP_RESULTS+=("$ok")
    fi
    run_details >"$ARTIFACTS/run.txt"
    timing_table >"$ARTIFACTS/timings.txt"
    echo
    timing_table
    if ((rc != 0)); then
        echo "e2e_kind: FAILED at '$FAILED_STEP'. Logs, the cluster's state and the run's details: $ARTIFACTS" >&2
    else
        echo "e2e_kind: passed. Logs and the run's details: $ARTIFACTS"
    fi
    exit "$rc"
}

# ---- the run

cd "$ROOT"
if ((DRY_RUN)); then
    echo "e2e on kind, dry run: the commands a run would run, in order; nothing is checked or created."
    echo "pinned: kind $KIND_VERSION, node image $NODE_IMAGE, kubectl $KUBECTL_VERSION, registry image $REGISTRY_IMAGE"
    for tool in docker kind kubectl "$INV"; do
        command -v "$tool" >/dev/null 2>&1 || echo "note: $tool is not on PATH here; a run would stop before creating anything."
    done
    echo "serving: $SERVING; cluster: $NAME (one node); registry: $REGISTRY_NAME on localhost:$REGISTRY_PORT"
    echo "folder for logs and, on failure, the cluster's state: $ARTIFACTS"
    echo
    echo "== checks (before anything is created)"
    show docker info --format '{{.NCPU}} {{.MemTotal}}'
    echo "      (wants $MIN_CPUS CPUs and $MIN_MEMORY_GIB GiB)"
    show "${INOTIFY_READ[@]}"
    echo "      (wants fs.inotify.max_user_watches >= $MIN_INOTIFY_WATCHES, max_user_instances >= $MIN_INOTIFY_INSTANCES)"
    show kind get clusters
    show docker inspect "$REGISTRY_NAME"
    echo "      (no cluster named $NAME, no container named $REGISTRY_NAME, 127.0.0.1:$REGISTRY_PORT free)"
else
    check_tools
    check_docker
    check_inotify
    check_free
    mkdir -p "$ARTIFACTS/logs"
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "kind $KIND_VERSION (found: $(kind version 2>&1)), node image $NODE_IMAGE"
    echo "kubectl $KUBECTL_VERSION (found: $(kubectl version --client 2>&1 | sed -n 1p)), registry image $REGISTRY_IMAGE"
    echo "serving: $SERVING; logs and, on failure, the cluster's state: $ARTIFACTS"
fi

echo
echo "== settings of the inv steps (the environment wins over a .env file)"
for setting in "${INV_ENV[@]}"; do
    show export "$setting"
    export "${setting?}"
done

REGISTRY_CREATED=1 # from here on, deleted at the end
step "start the registry" start_registry
CLUSTER_CREATED=1
step "create the kind cluster" create_cluster
step "connect the registry" connect_registry
step "check the service-account issuer" check_issuer
step "inv setup --mode cluster" inv_step setup --mode cluster
step "inv build-push" inv_step build-push
step "inv train --mode cluster" inv_step train --mode cluster
step "inv query --mode cluster" inv_step query --mode cluster
step "inv undeploy" inv_step undeploy

if ((DRY_RUN)); then
    echo
    if ((KEEP)); then
        echo "== keep the cluster and the registry (--keep)"
    else
        echo "== delete the cluster and the registry (also after a failure, once the cluster's state is collected)"
        show kind delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_FILE"
        show docker rm -f "$REGISTRY_NAME"
    fi
fi
