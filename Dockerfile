# Built from uv.lock: every package at the version and hash the lock gives, nothing resolved here.
FROM python:3.11-slim
WORKDIR /srv
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/srv/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/srv/.venv/bin:$PATH
# uv itself, pinned by hash
COPY scripts/uv-requirements.txt ./scripts/
RUN pip install --no-cache-dir --require-hashes --no-deps -r scripts/uv-requirements.txt
# The dependencies first, in a layer of their own that a code change leaves cached
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project --no-cache --python python3
COPY app ./app
RUN uv sync --locked --no-editable --no-cache --python python3
ENV PORT=8000
EXPOSE 8000
# exec: uvicorn itself gets SIGTERM, finishes its work and exits (docker stop waits 30 s).
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port ${PORT} --timeout-graceful-shutdown 10"]
