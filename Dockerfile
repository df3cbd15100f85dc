# The image every pipeline component runs in. PyTorch's Linux wheels from PyPI carry their CUDA runtime,
# so this image uses a GPU where the node has an NVIDIA driver and runs on the CPU elsewhere.
# Build:  docker build -t REGISTRY/cxrpriv:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
FROM python:3.11-slim-bookworm

ARG GIT_COMMIT=unknown
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    CXRPRIV_GIT_COMMIT=${GIT_COMMIT}

WORKDIR /app
# Dependencies first (a layer that changes only with the lock file).
COPY requirements/lock.txt requirements/lock.txt
RUN pip install -r requirements/lock.txt
# Then the package itself, without re-resolving anything: nothing is fetched at run time.
# params.yaml before the install: src/cxrpriv/params.yaml is a symlink to it, which the build copies into the
# package (the CLI's defaults when there is no ./params.yaml; components pass their configs explicitly).
COPY pyproject.toml README.md LICENSE params.yaml ./
COPY src ./src
RUN pip install --no-deps . && python -c "import cxrpriv.cli, cxrpriv.synth.cohort, torch, monai, kfp"
RUN useradd --create-home --uid 1000 cxrpriv
USER cxrpriv
