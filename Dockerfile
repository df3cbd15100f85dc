# The image every pipeline component runs in: the library, kfp and exactly the packages of the lock file, in a
# virtual environment, run as a non-root user (uid 1000, or any uid with group 0) whose working directory,
# caches and temporary files are writable. See docs/kubernetes.md.
#
# Build (a registry base must be pinned by digest; the build stops otherwise):
#   docker build -t REGISTRY/cxrpriv:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#       --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# TORCH_VARIANT=cuda (default): PyPI's torch 2.13.0 with its CUDA 13.0 runtime, pinned in
#   requirements/lock-cuda.txt (needs an NVIDIA driver of branch R580 or newer on GPU nodes; runs on CPU elsewhere).
# TORCH_VARIANT=cpu: the CPU wheel (torch 2.13.0+cpu), from .image-build/wheels/ when staged there, else from
#   TORCH_CPU_INDEX. Offline, with a locally made Debian base: scripts/build_image_offline.sh.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG BASE_IMAGE
ARG TORCH_VARIANT=cuda
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN case "${BASE_IMAGE}" in \
      *@sha256:*|local/*) ;; \
      *) echo "BASE_IMAGE=${BASE_IMAGE} is not pinned: pass --build-arg BASE_IMAGE=NAME@sha256:DIGEST" \
              "(docker buildx imagetools inspect NAME prints it)" >&2; exit 1 ;; \
    esac
# The lock files, and whatever the offline script staged: a CA bundle for a TLS-intercepting proxy
# (ca-bundle.crt) and wheels (wheels/). The brackets make .image-build optional. Nothing of this reaches the
# final stage, which copies only the virtual environment. --no-deps: exactly the lock's packages (pip check
# fails the build if the lock misses one).
COPY requirements/lock.txt requirements/lock-cuda.txt .image-buil[d] /tmp/build/
RUN set -eu; \
    if [ -f /tmp/build/ca-bundle.crt ]; then export PIP_CERT=/tmp/build/ca-bundle.crt; fi; \
    case "${TORCH_VARIANT}" in \
      cuda) extra="-r /tmp/build/lock-cuda.txt" ;; \
      cpu) if ls /tmp/build/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then extra="--find-links /tmp/build/wheels"; \
           else extra="--extra-index-url ${TORCH_CPU_INDEX}"; fi ;; \
      *) echo "TORCH_VARIANT must be cuda or cpu, not ${TORCH_VARIANT}" >&2; exit 1 ;; \
    esac; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-deps -r /tmp/build/lock.txt ${extra}; \
    /opt/venv/bin/pip check; \
    /opt/venv/bin/python -c "import sys, torch; cpu = '+cpu' in torch.__version__; \
sys.exit(0 if cpu == ('${TORCH_VARIANT}' == 'cpu') else 'torch ' + torch.__version__ + ' is not the ${TORCH_VARIANT} build')"
# Then the package, as a wheel built without resolving anything. params.yaml first: src/cxrpriv/params.yaml is
# a symlink to it, which the build copies into the package (the defaults when there is no ./params.yaml).
FROM build AS wheel
WORKDIR /build
COPY pyproject.toml README.md LICENSE params.yaml ./
COPY src ./src
RUN /opt/venv/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /build/dist .

FROM ${BASE_IMAGE}
# The dependencies first: this large layer changes only with the lock files, not with the code.
COPY --from=build /opt/venv /opt/venv
ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
ARG TORCH_VARIANT=cuda
LABEL org.opencontainers.image.title="cxrpriv" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.cxrpriv.torch-variant="${TORCH_VARIANT}"
# Caches and temporary files under /tmp, which KFP's own launcher already needs writable (`mktemp -d`); on a
# read-only root filesystem mount an emptyDir there. HOME and USER are set for any uid (an arbitrary uid has no
# passwd entry, and getpass.getuser() would fail); HOME is group-0 writable, so a random uid in group 0
# (OpenShift) can write there too.
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    HOME=/home/cxrpriv \
    USER=cxrpriv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/cxrpriv-cache \
    MPLCONFIGDIR=/tmp/cxrpriv-cache/matplotlib \
    TORCH_HOME=/tmp/cxrpriv-cache/torch \
    HF_HOME=/tmp/cxrpriv-cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    GIT_PYTHON_REFRESH=quiet \
    CXRPRIV_GIT_COMMIT=${GIT_COMMIT}
COPY --from=wheel /build/dist /tmp/dist
# As root: install, check the imports and the packaged params, then remove what that left in /tmp and HOME,
# so that no root-owned cache is in the runtime user's way.
RUN useradd --create-home --home-dir /home/cxrpriv --uid 1000 --gid 0 cxrpriv \
    && chmod 0775 /home/cxrpriv \
    && pip install --no-deps --disable-pip-version-check /tmp/dist/*.whl && pip check \
    && python3 -c "import cxrpriv.cli, cxrpriv.synth.cohort, torch, monai, kfp; \
from cxrpriv.config import PACKAGED_PARAMS_FILE as p; assert p.is_file() and not p.is_symlink(), p" \
    && rm -rf /tmp/* /tmp/.[!.]* /home/cxrpriv/.config /home/cxrpriv/.cache
USER 1000
# A writable working directory: MLflow's default store (./mlflow.db) and anything relative land there.
WORKDIR /home/cxrpriv
CMD ["cxrpriv", "--help"]
