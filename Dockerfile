# syntax=docker/dockerfile:1
#
# GPU image for xgrad experiments: CuPy backend, GPU test leg, examples.
#
#   docker build -t xgrad-gpu .
#   docker run --rm --gpus all xgrad-gpu            # xgrad info + GPU tests
#
# CUDA comes from pip, not from the base image
# -------------------------------------------
# CuPy is installed with its `[ctk]` extra (xgrad's `cuda12` / `cuda13`
# extras), which pulls the CUDA Toolkit libraries *and headers* (NVRTC,
# cuBLAS, ..., CUDA runtime headers) from PyPI into the virtual environment.
# The only thing the host has to provide is the NVIDIA driver (libcuda),
# which the NVIDIA Container Toolkit mounts into the container at
# `docker run --gpus all`.
#
# The base image is therefore only the OS plus the NVIDIA_* environment
# variables the container toolkit reads (NVIDIA_VISIBLE_DEVICES,
# NVIDIA_DRIVER_CAPABILITIES, NVIDIA_REQUIRE_CUDA).  Use a `-base-` image
# (smallest) or a `-devel-` one (full system toolkit, much larger).  Do NOT
# use a `-runtime-` image: it ships a system copy of the CUDA libraries but
# none of the headers that CuPy's JIT compiler (NVRTC) needs since CUDA 12.2
# (cupy/cupy#8466), so it only adds a second, possibly mismatching, toolkit.
#
# Keep an `ubuntu24.04` variant: its python3 is 3.12 (ubuntu22.04 has 3.10).
# The image's CUDA version is a *driver requirement* enforced when the
# container starts (NVIDIA_REQUIRE_CUDA); pick a tag the host driver supports.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04

FROM ${CUDA_IMAGE}

LABEL org.opencontainers.image.title="xgrad-gpu" \
      org.opencontainers.image.description="xgrad (array-API autograd) with the CuPy backend, for GPU experiments"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python from the distribution, installed without recommends; apt lists are
# removed in the same layer.
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 \
        python3-venv \
 && rm -rf /var/lib/apt/lists/*

# Non-root user.  ubuntu:24.04 (and so nvidia/cuda:*-ubuntu24.04) already has
# the user `ubuntu` with UID/GID 1000, so a different default UID is used; a
# UID/GID that already exists (e.g. --build-arg APP_UID=1000) is reused
# instead of failing.  Everything below refers to the numeric IDs.
ARG APP_USER=xgrad
ARG APP_UID=10001
ARG APP_GID=10001
RUN if ! getent group "${APP_GID}" >/dev/null; then \
        groupadd --gid "${APP_GID}" "${APP_USER}"; \
    fi \
 && if ! getent passwd "${APP_UID}" >/dev/null; then \
        useradd --no-log-init --uid "${APP_UID}" --gid "${APP_GID}" \
                --create-home --shell /bin/bash "${APP_USER}"; \
    fi \
 && install -d -o "${APP_UID}" -g "${APP_GID}" /app /opt/venv

# The virtual environment belongs to the non-root user, so `pip install`
# works inside the container for ad-hoc experiments.
USER ${APP_UID}:${APP_GID}
RUN python3 -m venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    CUPY_CACHE_DIR=/tmp/cupy_kernel_cache
# MPLCONFIGDIR and CUPY_CACHE_DIR point to /tmp so that the image also works
# with `docker run --user "$(id -u):$(id -g)"`, where $HOME is not writable.

WORKDIR /app

# ---- dependency layer (rebuilt only when pyproject.toml changes) ----------
# CUDA_EXTRA: `cuda12` (cupy-cuda12x[ctk], driver R525+) or `cuda13`
# (cupy-cuda13x[ctk], driver R580+).  The two are mutually exclusive: give
# exactly one.  EXTRAS: the other optional-dependency groups to install.
ARG CUDA_EXTRA=cuda12
ARG EXTRAS=test,examples
COPY --chown=${APP_UID}:${APP_GID} pyproject.toml ./
# The requirement list is read from pyproject.toml (single source of truth):
# [project] dependencies plus the selected extras; self-references such as
# `xgrad[test]` inside an extra are expanded.  An unknown extra fails the build.
RUN python -c 'import re, sys, tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
optional = project.get("optional-dependencies", {}); \
self_ref = re.compile(re.escape(project["name"]) + r"\s*\[([^\]]*)\]", re.IGNORECASE); \
expand = lambda extras: [req for extra in extras if extra.strip() for item in optional[extra.strip()] for req in (expand(self_ref.match(item)[1].split(",")) if self_ref.match(item) else [item])]; \
print(*project.get("dependencies", []), *expand(sys.argv[1].split(",")), sep="\n")' \
        "${CUDA_EXTRA},${EXTRAS}" | tee /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# ---- the project itself ---------------------------------------------------
# Editable install: a checkout bind-mounted over /app (-v "$PWD:/app") is
# then what `import xgrad` loads.
COPY --chown=${APP_UID}:${APP_GID} . /app
RUN pip install --no-cache-dir --no-deps -e . \
 && python -c "import xgrad"

# Default: environment report + GPU test leg + a short example.
CMD ["bash", "/app/docker/gpu-smoke.sh"]
