# JupyterLab for the course, used by docker-compose.yml's `jupyter` service.
# The brokers run in their own containers; this image holds only Python and the course's
# packages (no broker software). docker compose bind-mounts the repo over /course, so
# notebooks and src/ edits on the host are live; the copy below only makes the image
# usable on its own.
# Pinned to a patch release and a Debian release (12, as the native course), so a rebuild
# gets the same Python; bump it on purpose. Python's minor version = binder/runtime.txt's.
FROM python:3.11.15-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# A non-root user; compose passes your uid/gid so files saved into the bind mount stay yours.
ARG NB_UID=1000
ARG NB_GID=1000
RUN groupadd --non-unique --gid "${NB_GID}" learner \
    && useradd --non-unique --uid "${NB_UID}" --gid "${NB_GID}" --create-home \
       --shell /bin/bash learner

WORKDIR /course

# Dependencies first (cached until requirements.txt changes), then the course itself.
# Only the learner's requirements: the test tools (requirements-dev.txt) stay out of the image.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

COPY --chown=learner:learner . /course
RUN pip install --no-deps -e .

USER learner
ENV JUPYTER_TOKEN=brokers
EXPOSE 8888

# Shell form inside exec form, so JUPYTER_TOKEN is read when the container starts.
CMD ["sh", "-c", "exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser --IdentityProvider.token=\"${JUPYTER_TOKEN:-brokers}\" --notebook-dir=/course"]
