"""The stack's ceiling: the same FastAPI and uvicorn serving an endpoint that only reads the body.

`uvicorn bench.ceiling:app` with the flags Cascade runs with; the intake benchmark loads it
with the same signed deliveries, on the same paths, in the same run.
"""

from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.post("/webhooks/heroku", status_code=202)
@app.post("/webhooks/github", status_code=202)
async def read_body(request: Request) -> Response:
    await request.body()
    return Response(b'{"status":"accepted"}', 202, media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
