"""The jobs API: create from an upload, list, follow, fetch the result, cancel, delete, proofread chunks."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from sakura_core.server.http.errors import APIError, from_validation_error, invalid_request
from sakura_core.server.http.httpio import json_response, parse, read_body_as
from sakura_core.server.http.sse import EventStream
from sakura_core.server.keys import STATE
from sakura_core.server.routes.schemas.common import ErrorResponse
from sakura_core.server.routes.spec import RouteSpec
from sakura_web.jobs.models import Chunk, ChunkEdit, ChunkList, Job, JobList, JobOptions
from sakura_web.jobs.runner import JobManager, Jobs
from sakura_web.jobs.store import safe_file_name
from sakura_web.jobs.upload import read_upload
from sakura_web.translate_routes import web_options

#: Error statuses of the routes that name a job.
JOB_ERRORS = (401, 404, 503)


def job_routes(jobs: Jobs) -> list[RouteSpec]:
    """The jobs API's routes over the server's job manager."""

    def manager() -> JobManager:
        return jobs.require()

    async def create_job(request: web.Request) -> web.Response:
        """Create a job from a multipart upload: a ``file`` part (its name picks the format, as the CLI's does)
        and an optional ``options`` part (JobOptions as JSON). 400 ``invalid_file`` with the CLI's one line for
        a file the pipeline cannot read; 413 over ``--max-upload-bytes``; 429 past ``--jobs-per-client``."""
        state = request.app[STATE]
        options = web_options(request)
        jobs_now = manager()
        if jobs_now.unfinished_of(request.remote) >= options.jobs_per_client:
            raise APIError(
                429,
                f"this client has {options.jobs_per_client} jobs queued or running (--jobs-per-client);"
                " wait for one to finish",
                type="rate_limit_error",
                code="too_many_jobs",
                close_connection=True,
            )
        upload = await read_upload(request, options.max_upload_bytes, state.settings)
        name = safe_file_name(upload.file_name)
        job_options = JobOptions()
        if upload.options is not None and upload.options.strip():
            try:
                job_options = JobOptions.model_validate_json(upload.options)
            except ValidationError as exc:
                error = from_validation_error(exc)
                error.param = f"options.{error.param}" if error.param else "options"
                raise error from None
        job = await jobs_now.create(name, upload.data, job_options, request.remote)
        return json_response(job, status=201)

    async def list_jobs(request: web.Request) -> web.Response:
        """Every job, newest first."""
        return json_response(JobList(data=manager().jobs()))

    async def get_job(request: web.Request) -> web.Response:
        """One job and its progress."""
        return json_response(manager().entry(request.match_info["id"]).job)

    async def job_events(request: web.Request) -> web.StreamResponse:
        """The job as server-sent events: ``data: <Job>`` at once and on every change; the stream ends after a
        final state (done, failed, cancelled) or when the job is deleted."""
        entry = manager().entry(request.match_info["id"])
        settings = request.app[STATE].settings
        events = EventStream(request, settings.sse_ping_seconds, settings.send_timeout_seconds)
        async with events:
            while True:
                changed = entry.changed
                await events.send(entry.job)
                if entry.job.finished or entry.job.id not in manager().entries:
                    break
                await changed.wait()
        return events.response

    async def job_result(request: web.Request) -> web.FileResponse:
        """The translated file, named as sakura translate names its output; 409 while the job is not done."""
        job_id = request.match_info["id"]
        path = manager().result_path(job_id)
        name = manager().entry(job_id).job.result_name or path.name
        return web.FileResponse(
            path,
            headers={
                "Content-Disposition": content_disposition(name),
                "Content-Type": "application/octet-stream",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def cancel_job(request: web.Request) -> web.Response:
        """Cancel a queued or running job: its generations end at once and free their slots."""
        return json_response(await manager().cancel(request.match_info["id"]))

    async def delete_job(request: web.Request) -> web.Response:
        """Remove a job and its files (cancelling it first if it runs)."""
        await manager().delete(request.match_info["id"])
        return web.Response(status=204)

    async def list_chunks(request: web.Request) -> web.Response:
        """The job's chunks for proofreading: source lines, translations, the checks' flags."""
        return json_response(ChunkList(data=await manager().chunks(request.match_info["id"])))

    async def edit_chunk(request: web.Request) -> web.Response:
        """Replace a chunk's translated lines (one per source line; 400 otherwise); the result is rebuilt."""
        job_id, index = request.match_info["id"], chunk_index(request)
        body = await read_body_as(request, request.app[STATE].body_limits(), lambda raw: parse(ChunkEdit, raw))
        return json_response(await manager().edit(job_id, index, body.translation))

    async def retranslate_chunk(request: web.Request) -> web.Response:
        """Translate a chunk again (not from the cache); the result is rebuilt."""
        return json_response(await manager().retranslate(request.match_info["id"], chunk_index(request)))

    tags = ("web", "jobs")
    return [
        RouteSpec(
            "POST",
            "/jobs",
            create_job,
            "Create a file translation job from a multipart upload ('file', optional 'options' JSON).",
            response=Job,
            media_type="application/json",
            errors=(400, 401, 408, 413, 503),
            other_responses={403: ErrorResponse, 429: ErrorResponse},
            tags=tags,
        ),
        RouteSpec("GET", "/jobs", list_jobs, "Every job, newest first.", response=JobList, errors=(401,), tags=tags),
        RouteSpec(
            "GET", "/jobs/{id}", get_job, "One job and its progress.", response=Job, errors=JOB_ERRORS, tags=tags
        ),
        RouteSpec(
            "GET",
            "/jobs/{id}/events",
            job_events,
            "The job as server-sent events on every change, until a final state.",
            stream_events=(Job,),
            media_type="text/event-stream",
            errors=JOB_ERRORS,
            tags=tags,
        ),
        RouteSpec(
            "GET",
            "/jobs/{id}/result",
            job_result,
            "The translated file (409 while the job is not done).",
            media_type="application/octet-stream",
            errors=(*JOB_ERRORS, 409),
            tags=tags,
        ),
        RouteSpec(
            "POST",
            "/jobs/{id}/cancel",
            cancel_job,
            "Cancel a queued or running job.",
            response=Job,
            errors=(*JOB_ERRORS, 409),
            tags=tags,
        ),
        RouteSpec("DELETE", "/jobs/{id}", delete_job, "Remove a job and its files.", errors=JOB_ERRORS, tags=tags),
        RouteSpec(
            "GET",
            "/jobs/{id}/chunks",
            list_chunks,
            "The job's chunks for proofreading, with the checks' flags.",
            response=ChunkList,
            errors=JOB_ERRORS,
            tags=tags,
        ),
        RouteSpec(
            "PUT",
            "/jobs/{id}/chunks/{index}",
            edit_chunk,
            "Edit a chunk's translated lines by hand; the result is rebuilt.",
            request=ChunkEdit,
            response=Chunk,
            errors=(400, *JOB_ERRORS, 409),
            tags=tags,
        ),
        RouteSpec(
            "POST",
            "/jobs/{id}/chunks/{index}/retranslate",
            retranslate_chunk,
            "Translate a chunk again (not from the cache); the result is rebuilt.",
            response=Chunk,
            errors=(*JOB_ERRORS, 409, 500),
            tags=tags,
        ),
    ]


def chunk_index(request: web.Request) -> int:
    """The ``{index}`` of the URL; 400 when it is not a number."""
    raw = request.match_info["index"]
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_request(f"chunk index {raw!r} is not a number", param="index")
    return int(raw)


def content_disposition(name: str) -> str:
    """``attachment`` with the file's name (RFC 6266: an ASCII fallback and the UTF-8 name)."""
    from urllib.parse import quote

    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
