FROM python:3.12-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir .
ENV PORT=8000
EXPOSE 8000
# exec: uvicorn itself gets SIGTERM, finishes its work and exits (docker stop waits 30 s).
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port ${PORT} --timeout-graceful-shutdown 10"]
