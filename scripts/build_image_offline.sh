#!/usr/bin/env bash
# Build the project's image on a machine that reaches Debian's packages and PyPI but no container registry
# (the way that works on the project's machines: /work/shared/notes/containers.md, docs/kubernetes.md):
#   1. Docker engine and debootstrap from Debian's packages; start dockerd if no daemon answers;
#   2. a Debian bookworm base made with debootstrap (minbase + python3, venv, pip) and `docker import`ed as
#      $BASE (skipped when that image exists);
#   3. `docker build` with BASE_IMAGE=$BASE, the machine's CA bundle for pip (a TLS-intercepting proxy) and,
#      for TORCH_VARIANT=cpu, the CPU torch wheel from the machine's wheel folder, staged in .image-build/.
# Needs root (apt-get, dockerd, debootstrap). Usage, from anywhere:
#   scripts/build_image_offline.sh                      # tags ${CXRPRIV_IMAGE:-ghcr.io/cxr-privacy/cxrpriv:0.1.0}
#   IMAGE=local/cxrpriv:dev WORK=/scratch scripts/build_image_offline.sh
# Settings (environment): IMAGE, BASE (local/bookworm), WORK (scratch: rootfs, logs), MIRROR (Debian mirror;
# default: the one apt uses), CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt), TORCH_VARIANT (cpu or cuda;
# default cpu: the CUDA build is 6.5 GB and useless without a GPU), WHEELS (folders to look for the CPU wheel).
# The locally made base has no registry digest: this is for building and testing here; a production build
# pins a registry base by digest (the Dockerfile refuses an unpinned registry base).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-${CXRPRIV_IMAGE:-ghcr.io/cxr-privacy/cxrpriv:0.1.0}}
BASE=${BASE:-local/bookworm}
WORK=${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/cxrpriv-image-build}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
WHEELS=${WHEELS:-/opt/wheels $(pip config get global.find-links 2>/dev/null || true)}
TORCH_VERSION=$(sed -n 's/^torch==//p' "$REPO/requirements/lock.txt")
mkdir -p "$WORK"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# 1. The engine.
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $WORK/dockerd.log)"
    nohup dockerd >"$WORK/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see $WORK/dockerd.log"; exit 1; }
fi

# 2. The base image.
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    if [[ -z ${MIRROR:-} ]]; then
        MIRROR=$(sed -n 's/^URIs: *\(\S*debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
        MIRROR=${MIRROR:-$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
        MIRROR=${MIRROR:-http://deb.debian.org/debian}
    fi
    ROOTFS="$WORK/rootfs"
    rm -rf "$ROOTFS"
    log "debootstrap bookworm (minbase, python3) from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { log "debootstrap failed; see $WORK/debootstrap.log"; exit 1; }
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    log "docker import as $BASE"
    tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
fi
log "base $BASE: $(docker image inspect --format '{{.Id}}' "$BASE")"

# 3. The project image. .image-build/ is git-ignored and the only extra the build context takes.
STAGE="$REPO/.image-build"
rm -rf "$STAGE"
mkdir -p "$STAGE/wheels"
trap 'rm -rf "$STAGE"' EXIT
if [[ -f $CA_BUNDLE ]]; then cp "$CA_BUNDLE" "$STAGE/ca-bundle.crt"; fi
if [[ $TORCH_VARIANT == cpu ]]; then
    wheel=""
    for dir in $WHEELS; do
        dir=${dir#file://}
        for candidate in "$dir"/torch-"$TORCH_VERSION"+cpu-cp311-*.whl; do
            [[ -f $candidate ]] && { wheel=$candidate; break 2; }
        done
    done
    if [[ -n $wheel ]]; then
        log "CPU torch wheel: $wheel"
        cp "$wheel" "$STAGE/wheels/"
    else
        log "no torch-$TORCH_VERSION+cpu wheel in: $WHEELS (the build tries PyTorch's CPU index instead)"
    fi
fi
old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
log "docker build $IMAGE (TORCH_VARIANT=$TORCH_VARIANT, commit $commit; log: $WORK/build.log)"
start=$(date +%s)
docker build -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE" \
    --build-arg TORCH_VARIANT="$TORCH_VARIANT" \
    --build-arg GIT_COMMIT="$commit" \
    "$REPO" >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; log "docker build failed"; exit 1; }
new=$(docker image inspect --format '{{.Id}}' "$IMAGE")
# A rebuild leaves the previous image untagged: remove it (and only it) when nothing else uses it.
if [[ -n $old && $old != "$new" ]]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
log "built $IMAGE in $(($(date +%s) - start)) s: $new, $(docker image inspect --format '{{.Size}}' "$IMAGE" \
    | awk '{printf "%.1f GB", $1 / 1e9}')"
