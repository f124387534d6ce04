# One image for the whole mesh: PersonaService, DispatcherService, the webhook gateway
# and the voice agent are all `friday <command>`, chosen by the container's args:
#   podman run IMAGE persona serve | dispatcher serve | gateway serve | agent start
# Where no registry image can be pulled, build on a local Debian base instead
# (scripts/build_base_image.sh; README, "Running on Kubernetes").
ARG BASE_IMAGE=python:3.11-slim-bookworm

# pyproject.toml's runtime dependencies as a requirements file, in a stage of its own:
# the build stage copies only this file, so editing the rest of pyproject.toml (tool
# settings, the dev extra) leaves the dependency layer below cached.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /requirements.txt

FROM ${BASE_IMAGE} AS build
# Behind a TLS-intercepting proxy pip needs that proxy's CA: mount the host's bundle and
# name it, `-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg
# PIP_CERT=/run/host-ca.crt`. Unset, pip trusts the base image's CAs. Build stage only:
# neither the value nor the file reaches the runtime image.
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python3 -m venv /opt/friday
# The dependencies first, in a layer of their own: editing the code then rebuilds only
# the small layer below. The list is pyproject.toml's (no dev extra), the versions
# constraints.txt's, which the test suite ran with.
COPY constraints.txt ./
COPY --from=requirements /requirements.txt ./
RUN /opt/friday/bin/pip install -q -c constraints.txt -r requirements.txt
COPY pyproject.toml README.md ./
COPY protos protos
COPY services services
COPY agent agent
COPY bench bench
# A regular (not editable) install: the runtime stage copies only the venv, never /src.
# No build isolation: the package is built with the setuptools constraints.txt pins
# (already in the venv, grpcio-tools needs it), not whatever PyPI has that day.
# pip check proves the install is complete; then pip goes, the image installs nothing at run time.
RUN /opt/friday/bin/pip install -q --no-deps --no-build-isolation -c constraints.txt . \
    && /opt/friday/bin/pip check \
    && /opt/friday/bin/python -m pip uninstall -q -y pip

FROM ${BASE_IMAGE} AS runtime
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER,
# and the manifests' securityContext runs the same 10001.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin friday
COPY --from=build /opt/friday /opt/friday
# HOME=/tmp: the root filesystem is read-only in the cluster and /tmp is the one
# writable mount, so anything that caches under ~ lands there. Bytecode was compiled
# at install time; nothing writes more.
ENV PATH=/opt/friday/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["friday"]
CMD ["--help"]
