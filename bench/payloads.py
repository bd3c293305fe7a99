"""The webhook bodies the benchmarks send, as their senders send them.

Templates carry `__PLACEHOLDERS__` that the wrk script (`signed.lua`) or the latency
driver fills per delivery; the Heroku one is the sandbox's own `api:release` event, so
its shape is the one Cascade's tests already hold to Heroku's.
"""

import json
from datetime import UTC, datetime
from typing import Any

from app.sandbox import SandboxPipeline
from app.sandbox.bodies import ACCOUNT, release_hook_data
from app.sandbox.world import World
from tests import signing

Json = dict[str, Any]


def heroku_release_template() -> str:
    """An `api:release` update (succeeded) with placeholders for app, version, ids, commit."""
    world = World([SandboxPipeline("p", (("p-a", "development"), ("p-b", "staging")))], _now())
    data = release_hook_data(world.apps[0].releases[-1])
    data["app"] |= {"id": "__APPID__", "name": "__APP__"}
    data["slug"]["commit"] = "__COMMIT__"
    data |= {"id": "__RELEASE__", "version": 999_999_999, "status": "succeeded"}
    stamp = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event: Json = {
        "id": "__DELIVERY__",
        "data": data,
        "actor": ACCOUNT,
        "action": "update",
        "version": "application/vnd.heroku+json; version=3",
        "resource": "release",
        "sequence": None,
        "created_at": stamp,
        "updated_at": stamp,
        "published_at": stamp,
        "previous_data": {},
        "webhook_metadata": {
            "attempt": {"id": "__DELIVERY__"},
            "delivery": {"id": "__DELIVERY__"},
            "event": {"id": "__DELIVERY__", "include": "api:release"},
            "webhook": {"id": "11111111-2222-4333-8444-555555555555"},
        },
    }
    return json.dumps(event).replace("999999999", "__VERSION__")


def github_push_template(repo: str = "acme/bench", size: int = 7 * 1024) -> str:
    """A GitHub `push` to main of about `size` bytes, its head commit `__SHA__`."""
    owner, name = repo.split("/")
    user = {
        "login": owner,
        "id": 1001,
        "node_id": "MDQ6VXNlcjEwMDE=",
        "avatar_url": f"https://avatars.githubusercontent.com/u/1001?v=4&{owner}",
        "url": f"https://api.github.com/users/{owner}",
        "html_url": f"https://github.com/{owner}",
        "type": "Organization",
        "site_admin": False,
    }
    repository = {
        "id": 424242,
        "node_id": "R_kgDOGVx1Ag",
        "name": name,
        "full_name": repo,
        "private": True,
        "owner": user,
        "html_url": f"https://github.com/{repo}",
        "description": "A service Cascade promotes",
        "fork": False,
        "url": f"https://github.com/{repo}",
        "created_at": 1700000000,
        "updated_at": "2026-01-01T00:00:00Z",
        "pushed_at": 1767225600,
        "git_url": f"git://github.com/{repo}.git",
        "ssh_url": f"git@github.com:{repo}.git",
        "clone_url": f"https://github.com/{repo}.git",
        "default_branch": "main",
        "master_branch": "main",
        "size": 12345,
        "language": "Python",
        "visibility": "private",
    }
    commit = {
        "id": "__SHA__",
        "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "distinct": True,
        "message": "Make the reconcile cheaper",
        "timestamp": "2026-01-01T00:00:00Z",
        "url": f"https://github.com/{repo}/commit/__SHA__",
        "author": {"name": "Ana", "email": "ana@example.com", "username": "ana"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [],
        "removed": [],
        "modified": ["app/engine/reconcile.py"],
    }
    event: Json = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "__SHA__",
        "repository": repository,
        "pusher": {"name": "ana", "email": "ana@example.com"},
        "organization": user,
        "sender": user,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repo}/compare/000000000000...__SHA__",
        "commits": [],
        "head_commit": commit,
    }
    filler = 0
    while len(json.dumps(event)) < size:  # older commits of the push, as GitHub lists them
        older = dict(commit, id=f"{filler:040x}", message=f"Step {filler} of the change")
        older["url"] = f"https://github.com/{repo}/commit/{filler:040x}"
        event["commits"].append(older)
        filler += 1
    event["commits"].append(commit)
    return json.dumps(event)


def _now() -> datetime:
    return datetime.now(UTC)


def signed(
    kind: str, template: str, apps: list[list[str]], n: int, secret: str
) -> tuple[bytes, dict[str, str]]:
    """Delivery `n` of `kind` ("heroku" or "github") and its headers, as `signed.lua` makes it:
    the apps (lines of name, id, commit) in turn, each delivery its own id and version."""
    if kind == "github":
        body = template.replace("__SHA__", f"{n:040x}").encode()
        return body, {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bench-{n}",
            "X-Hub-Signature-256": signing.github(body, secret),
        }
    name, app_id, commit = apps[n % len(apps)]
    body = (
        template.replace("__DELIVERY__", f"bench-{n}")
        .replace("__VERSION__", str(1_000_000 + n))
        .replace("__RELEASE__", f"00000000-0000-4000-8000-{n:012d}")
        .replace("__APPID__", app_id)
        .replace("__APP__", name)
        .replace("__COMMIT__", commit)
    ).encode()
    signature = signing.heroku(body, secret)
    return body, {"Content-Type": "application/json", "Heroku-Webhook-Hmac-SHA256": signature}
