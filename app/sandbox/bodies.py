"""The sandbox world rendered as Heroku renders it: Platform API bodies and webhook data.

Pure functions from `app.sandbox.resources` records to JSON, so the shapes can be checked
against Heroku's schema in one place; `app.sandbox` only routes and sends them.
"""

from datetime import UTC, datetime

from app.sandbox.resources import (
    App,
    AppWebhook,
    Json,
    Pipeline,
    Promotion,
    PromotionTarget,
    Release,
    ReleaseStatus,
    Slug,
)
from app.sandbox.world import World

ACCOUNT: Json = {"id": "5a1d6c3e-0000-4000-8000-5a4db0c5a1d6", "email": "sandbox@example.com"}
STACK: Json = {"id": "ee582d3c-717d-4a57-ba5f-8b3a39f3a817", "name": "heroku-24"}
REGION: Json = {"id": "59accabd-516d-4f0e-83e6-6e3757701145", "name": "us"}
GENERATION: Json = {"id": "7a1f9a6e-0000-4000-8000-00000000ced4", "name": "cedar"}
FIR: Json = {"id": "7a1f9a6e-0000-4000-8000-0000000000f1", "name": "fir"}
CNB_STACK: Json = {"id": "ba46bf09-7bd1-42fd-90df-a1a9a93eb4a2", "name": "cnb"}  # Fir's
CONTAINER_STACK: Json = {"id": "7a1f9a6e-0000-4000-8000-00000000d0c4", "name": "container"}


def iso(moment: datetime) -> str:
    """Heroku's timestamp form: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pipeline_json(pipeline: Pipeline) -> Json:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "created_at": iso(pipeline.created_at),
        "updated_at": iso(pipeline.created_at),
        "owner": {"id": ACCOUNT["id"], "type": "user"},
        "generation": FIR if pipeline.fir else GENERATION,
    }


def coupling_json(app: App, *, pipeline_name: bool = False) -> Json:
    """`pipeline_name`: the per-app coupling names its pipeline too (the CLI reads it)."""
    pipeline: Json = {"id": app.pipeline.id}
    if pipeline_name:
        pipeline["name"] = app.pipeline.name
    return {
        "id": app.coupling_id,
        "app": {"id": app.id},
        "pipeline": pipeline,
        "stage": app.stage,
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
    }


def stack_of(app: App) -> Json:
    if app.container:
        return CONTAINER_STACK
    return CNB_STACK if app.pipeline.fir else STACK


def app_json(app: App) -> Json:
    current = app.current
    return {
        "acm": False,
        "archived_at": None,
        "buildpack_provided_description": "Python",
        "build_stack": stack_of(app),
        "created_at": iso(app.created_at),
        "generation": FIR if app.pipeline.fir else GENERATION,
        "git_url": f"https://git.heroku.com/{app.name}.git",
        "id": app.id,
        "internal_routing": None,
        "maintenance": False,
        "name": app.name,
        "owner": ACCOUNT,
        "organization": None,
        "team": None,
        "region": REGION,
        "released_at": iso(current.created_at) if current else None,
        "repo_size": None,
        "slug_size": 52_428_800,
        "space": None,
        "stack": stack_of(app),
        "updated_at": iso(current.updated_at if current else app.created_at),
        "web_url": f"https://{app.name}-{app.host_suffix}.herokuapp.com/",
    }


def release_json(release: Release) -> Json:
    """A slug release (Cedar), an OCI image one with a null slug (Fir), or neither (container)."""
    kind = release.app.build_kind
    return {
        "addon_plan_names": [],
        "artifacts": [{"type": kind, "id": release.slug.id}] if kind else [],
        "app": {"id": release.app.id, "name": release.app.name},
        "created_at": iso(release.created_at),
        "description": release.description,
        "id": release.id,
        "updated_at": iso(release.updated_at),
        "slug": {"id": release.slug.id} if kind == "slug" else None,
        "status": str(release.status),
        "user": ACCOUNT,
        "version": release.version,
        "current": release.current,
        "output_stream_url": None,
        "eligible_for_rollback": release.status is ReleaseStatus.SUCCEEDED,
    }


def release_hook_data(release: Release) -> Json:
    """A webhook's `data`: the release with the slug's commit, as Heroku sends it (a release
    with no slug names no commit)."""
    data = release_json(release)
    data["app"]["process_tier"] = "basic"
    if data["slug"]:
        slug = release.slug
        data["slug"] = {"id": slug.id, "commit": slug.commit, "commit_description": ""}
    data["stack"] = stack_of(release.app)["name"]
    data["pstable"] = {}
    return data


def slug_json(slug: Slug) -> Json:
    return {
        "blob": {"method": "GET", "url": f"https://sandbox.invalid/slugs/{slug.id}.tgz"},
        "buildpack_provided_description": "Python",
        "checksum": f"SHA256:{slug.commit}{slug.commit[:24]}",
        "commit": slug.commit,
        "commit_description": "",
        "created_at": iso(slug.created_at),
        "id": slug.id,
        "process_types": {"web": "uvicorn app.main:app --host 0.0.0.0 --port $PORT"},
        "size": 52_428_800,
        "stack": STACK,
        "updated_at": iso(slug.created_at),
        "deleted_at": None,
    }


def oci_image_json(image: Slug) -> Json:
    """A Fir build as the schema's `oci-image`."""
    return {
        "id": image.id,
        "base_image_name": "heroku/heroku:24-cnb",
        "base_top_layer": f"sha256:{image.commit}{image.commit[:24]}",
        "commit": image.commit,
        "commit_description": "",
        "image_repo": f"{image.id}/builds",
        "digest": f"sha256:{image.commit[:24]}{image.commit}",
        "stack": CNB_STACK,
        "process_types": {
            "web": {
                "name": "web",
                "display_cmd": "uvicorn app.main:app --host 0.0.0.0 --port $PORT",
                "command": "/cnb/process/web",
                "working_dir": "/workspace",
                "default": True,
            }
        },
        "buildpacks": [
            {
                "id": "heroku/python",
                "version": "1.0.0",
                "homepage": "https://github.com/heroku/buildpacks-python",
            }
        ],
        "created_at": iso(image.created_at),
        "updated_at": iso(image.created_at),
        "architecture": "amd64",
        "deleted_at": None,
    }


def webhook_json(hook: AppWebhook) -> Json:
    """The schema's `app_webhook`: never the secret, which only signs deliveries."""
    return {
        "app": {"id": hook.app.id, "name": hook.app.name},
        "created_at": iso(hook.created_at),
        "id": hook.id,
        "include": list(hook.include),
        "level": hook.level,
        "updated_at": iso(hook.updated_at),
        "url": hook.url,
    }


def promotion_json(promotion: Promotion) -> Json:
    return {
        "id": promotion.id,
        "pipeline": {"id": promotion.pipeline.id},
        "source": {
            "app": {"id": promotion.source.app.id},
            "release": {"id": promotion.source.id},
        },
        "status": promotion.status,
        "created_at": iso(promotion.created_at),
        "updated_at": iso(promotion.updated_at),
    }


def target_json(target: PromotionTarget) -> Json:
    return {
        "id": target.id,
        "app": {"id": target.app.id},
        "pipeline_promotion": {"id": target.promotion.id},
        "release": {"id": target.release.id} if target.release else None,
        "status": target.status,
        "error_message": target.error_message,
    }


def promotion_record(promotion: Promotion) -> Json:
    """What `/_sandbox/promotions` shows: the request as received and what it became."""
    return {
        **promotion_json(promotion),
        "request": promotion.request,
        "source_app": promotion.source.app.name,
        "release_id": promotion.source.id,
        "release_version": promotion.source.version,
        "commit": promotion.source.slug.commit,
        "target_apps": [t.app.name for t in promotion.targets],
        "targets": [{"app": t.app.name, **target_json(t)} for t in promotion.targets],
    }


def state_json(world: World) -> Json:
    """`/_sandbox/state`: per app, what runs and what is still pending."""
    return {
        "pipelines": [{"id": p.id, "name": p.name} for p in world.pipelines],
        "apps": {app.name: _app_state(app) for app in world.apps},
    }


def _app_state(app: App) -> Json:
    pending = [r for r in app.releases if r.status is ReleaseStatus.PENDING]
    return {
        "id": app.id,
        "pipeline": app.pipeline.name,
        "stage": app.stage,
        "current": _release_brief(app.current),
        "pending": _release_brief(pending[-1] if pending else None),  # the newest one
        "pending_versions": [r.version for r in pending],
        "latest_version": app.releases[-1].version,
    }


def _release_brief(release: Release | None) -> Json | None:
    if release is None:
        return None
    return {
        "id": release.id,
        "version": release.version,
        "commit": release.slug.commit,
        "status": str(release.status),
        "description": release.description,
        "created_at": iso(release.created_at),
    }
