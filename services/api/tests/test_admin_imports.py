"""Export imports: uploading ZIPs (raw and multipart), listing, progress, cancelling."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import Request
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import Message

from playlog.db.engine import create_sessionmaker, db_now
from playlog.db.models import ImportJob, User
from playlog.db.models.imports import FINISHED_IMPORT_STATUSES, IMPORT_CHANNEL, IMPORT_STATUSES
from playlog.exports.storage import ZIP_SIGNATURE, upload_path
from playlog.testing.factories import add_import_job, add_user
from playlog.testing.http import asgi_client, walk_pages
from playlog.testing.notify import notifications
from playlog.web.db import get_db_session, get_sessionmaker
from playlog_api.admin.imports import CANCELLED_ERROR, safe_filename
from playlog_api.admin.schemas import ImportJobStatus
from playlog_api.admin.uploads import MULTIPART_OVERHEAD, WRITE_SIZE
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

MB = 1024 * 1024
BASE = datetime(2025, 6, 1, tzinfo=UTC)
BOUNDARY = "playlog-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
ZIP = "application/zip"
Body = bytes | AsyncIterable[bytes]


def export_zip() -> bytes:
    """A small ZIP shaped like a Spotify export."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "Spotify Extended Streaming History/Streaming_History_Audio_2024.json",
            '[{"ts": "2024-01-01T12:00:00Z", "ms_played": 200000}]',
        )
    return buffer.getvalue()


def zip_like(size: int) -> bytes:
    """``size`` bytes that start like a ZIP (the api checks no more than that)."""
    filler = bytes(range(256)) * (size // 256 + 1)
    return (ZIP_SIGNATURE + filler)[:size]


def multipart(file_chunks: Iterable[bytes], *, name: str = "file", ending: bool = True) -> bytes:
    """A multipart/form-data body with one ignored field and one file part."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nignored\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        'filename="big.zip"\r\nContent-Type: application/zip\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode() if ending else b""
    return head + b"".join(file_chunks) + tail


class Chunks:
    """An upload body sent in pieces (chunked, no Content-Length) that counts how many
    pieces the api read."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces = list(pieces)
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.read += 1
            yield piece


def in_pieces(body: bytes, size: int) -> Chunks:
    return Chunks(body[start : start + size] for start in range(0, len(body), size))


def body_of(data: bytes, content_type: str, piece_size: int) -> Chunks:
    """``data`` as the whole body, or as the file of a multipart body, in pieces."""
    return in_pieces(multipart([data]) if content_type == MULTIPART else data, piece_size)


def stored_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def assert_error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert text in error["message"]


@dataclass
class Api:
    """The api as the admin, the test's session, a user and the upload dir."""

    client: httpx.AsyncClient
    session: AsyncSession
    admin: dict[str, str]
    user: User
    uploads: Path

    def url(self, user_id: uuid.UUID | None = None) -> str:
        return f"/admin/users/{user_id or self.user.id}/imports/zip"

    async def upload(
        self,
        content: Body,
        *,
        content_type: str | None = ZIP,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> httpx.Response:
        sent = {**self.admin, **(headers or {})}
        if content_type:
            sent["Content-Type"] = content_type
        return await self.client.post(self.url(), headers=sent, content=content, params=params)

    async def upload_form(
        self, name: str, content: bytes, data: dict[str, str] | None = None
    ) -> httpx.Response:
        files = {"file": (name, content, ZIP)}
        return await self.client.post(self.url(), headers=self.admin, files=files, data=data)

    async def call(self, method: str, path: str, **params: str) -> httpx.Response:
        return await self.client.request(method, path, headers=self.admin, params=params)

    def path_of(self, job: dict[str, Any]) -> Path:
        return upload_path(self.uploads, self.user.id, uuid.UUID(job["id"]))

    async def job(self, job_id: str | uuid.UUID) -> ImportJob:
        job = await self.session.get(ImportJob, uuid.UUID(str(job_id)), populate_existing=True)
        assert job is not None
        return job

    async def add_job(self, **fields: Any) -> ImportJob:
        job = await add_import_job(self.session, self.user.id, **fields)
        await self.session.commit()
        return job

    async def assert_nothing_left(self) -> None:
        assert stored_files(self.uploads) == []
        jobs = select(func.count()).where(ImportJob.user_id == self.user.id)
        assert await self.session.scalar(jobs) == 0


@pytest_asyncio.fixture
async def api(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str], uploads: Path
) -> Api:
    user = await add_user(db_session)
    await db_session.commit()
    return Api(client, db_session, admin, user, uploads)


@pytest_asyncio.fixture
async def capped(
    api: Api, api_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    """The same, with an api that accepts ZIPs of at most 1 MB (IMPORT_MAX_ZIP_SIZE_MB=1)."""
    settings = api_settings.model_copy(update={"import_max_zip_size_mb": 1})
    async with asgi_client(create_app(settings, sessionmaker=db_sessionmaker)) as client:
        yield replace(api, client=client)


def test_the_status_filter_matches_the_stored_statuses() -> None:
    assert get_args(ImportJobStatus) == IMPORT_STATUSES


# --- uploading ------------------------------------------------------------------------


async def test_raw_upload_creates_a_pending_job_and_stores_the_file(api: Api) -> None:
    body = export_zip()

    response = await api.upload(body, filename="my_spotify_data.zip")

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["user_id"] == str(api.user.id)
    assert job["status"] == "pending"
    assert job["original_filename"] == "my_spotify_data.zip"
    assert job["file_size_bytes"] == len(body)
    assert job["progress"] == {"fraction": 0.0, "records_per_second": None, "eta_seconds": None}
    path = api.path_of(job)
    assert (await api.job(job["id"])).storage_path == str(path)
    assert stored_files(api.uploads) == [path]  # no .part file left
    assert path.read_bytes() == body
    detail = (await api.call("GET", f"/admin/users/{api.user.id}")).json()
    assert [item["id"] for item in detail["recent_imports"]] == [job["id"]]


async def test_multipart_upload_stores_the_file_field(api: Api) -> None:
    body = zip_like(3 * WRITE_SIZE + 12345)  # several writes to disk

    response = await api.upload_form("export.zip", body, data={"comment": "ignored"})

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["status"], job["original_filename"]) == ("pending", "export.zip")
    assert job["file_size_bytes"] == len(body)
    assert stored_files(api.uploads) == [api.path_of(job)]
    assert api.path_of(job).read_bytes() == body
    assert (await api.job(job["id"])).status == "pending"


@pytest.mark.parametrize("content_type", [ZIP, MULTIPART])
async def test_a_body_in_tiny_pieces_is_stored_whole(api: Api, content_type: str) -> None:
    data = zip_like(20_000)

    # Pieces of 3 bytes split the ZIP signature, the boundaries and the part headers.
    response = await api.upload(body_of(data, content_type, 3), content_type=content_type)

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["original_filename"] == ("big.zip" if content_type == MULTIPART else "upload.zip")
    assert api.path_of(job).read_bytes() == data


async def test_uploads_notify_the_collectors_on_commit(
    api_settings: ApiSettings,
    db_engine: AsyncEngine,
    database_url: str,
    admin: dict[str, str],
    uploads: Path,
) -> None:
    committed = create_sessionmaker(db_engine)
    async with committed.begin() as session:
        user = await add_user(session, "Notified")
    try:
        async with (
            notifications(database_url, IMPORT_CHANNEL) as received,
            asgi_client(create_app(api_settings, sessionmaker=committed)) as client,
            committed() as session,
        ):
            api = Api(client, session, admin, user, uploads)
            raw = await api.upload(export_zip())
            form = await api.upload_form("a.zip", export_zip())
            # A refused upload sends nothing: its transaction rolls back.
            refused = await api.upload(b"not a zip")
            assert (raw.status_code, form.status_code, refused.status_code) == (202, 202, 415)
            payloads = [await asyncio.wait_for(received.get(), timeout=5) for _ in range(2)]
            assert payloads == [raw.json()["id"], form.json()["id"]]
            await asyncio.sleep(0.2)
            assert received.empty()
    finally:
        async with committed.begin() as session:
            await session.execute(delete(User).where(User.id == user.id))


@pytest.mark.parametrize(
    ("content_type", "body", "code", "text"),
    [
        (ZIP, b"plain text, not a zip", 415, "not a ZIP file"),
        ("application/octet-stream", b"PK", 415, "not a ZIP file"),  # too short for one
        # An empty ZIP is a ZIP, with nothing to import.
        ("application/x-zip-compressed", b"PK\x05\x06" + bytes(18), 422, "the ZIP is empty"),
        ("text/plain", ZIP_SIGNATURE + b"data", 415, "Content-Type application/zip"),
        (None, ZIP_SIGNATURE + b"data", 415, "Content-Type application/zip"),
        (ZIP, b"", 422, "empty"),
        (MULTIPART, multipart([b"no zip here"]), 415, "not a ZIP file"),
        (MULTIPART, multipart([b""]), 422, "empty"),
        (MULTIPART, multipart([ZIP_SIGNATURE], name="upload"), 422, "no file field named 'file'"),
        (MULTIPART, multipart([ZIP_SIGNATURE + b"cut off"], ending=False), 422, "last boundary"),
        ("multipart/form-data", multipart([ZIP_SIGNATURE]), 422, "boundary"),
    ],
)
async def test_refused_uploads_leave_nothing_behind(
    api: Api, content_type: str | None, body: bytes, code: int, text: str
) -> None:
    response = await api.upload(body, content_type=content_type)

    codes = {415: "unsupported_media_type", 422: "validation_error"}
    assert_error(response, code, codes[code], text)
    await api.assert_nothing_left()


@pytest.mark.parametrize(
    ("content_type", "declared"), [(ZIP, MB + 1), (MULTIPART, MB + MULTIPART_OVERHEAD + 1)]
)
async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    capped: Api, content_type: str, declared: int
) -> None:
    body = Chunks([ZIP_SIGNATURE])

    response = await capped.upload(
        body, content_type=content_type, headers={"Content-Length": str(declared)}
    )

    assert_error(response, 413, "payload_too_large", "larger than 1 MB")
    assert body.read == 0
    await capped.assert_nothing_left()


@pytest.mark.parametrize("content_type", [ZIP, MULTIPART])
async def test_a_streamed_body_over_the_cap_is_refused_while_streaming(
    capped: Api, content_type: str
) -> None:
    body = body_of(zip_like(4 * MB), content_type, 64 * 1024)

    response = await capped.upload(body, content_type=content_type)

    assert_error(response, 413, "payload_too_large", "IMPORT_MAX_ZIP_SIZE_MB")
    assert body.read < len(body.pieces) // 2  # refused just after the cap, not at the end
    await capped.assert_nothing_left()


@pytest.mark.parametrize("content_type", [ZIP, MULTIPART])
async def test_the_cap_counts_the_bytes_of_the_file(capped: Api, content_type: str) -> None:
    def body(size: int) -> Chunks:
        return body_of(zip_like(size), content_type, 100_000)

    over = await capped.upload(body(MB + 1), content_type=content_type)
    assert_error(over, 413, "payload_too_large")
    await capped.assert_nothing_left()

    at_cap = await capped.upload(body(MB), content_type=content_type)
    assert at_cap.status_code == 202, at_cap.text
    assert [path.stat().st_size for path in stored_files(capped.uploads)] == [MB]


async def test_ignored_multipart_fields_count_towards_the_cap(capped: Api) -> None:
    padding = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'.encode()
    body = padding + bytes(2 * MB) + b"\r\n" + multipart([zip_like(1000)])

    response = await capped.upload(in_pieces(body, 64 * 1024), content_type=MULTIPART)

    assert_error(response, 413, "payload_too_large")
    await capped.assert_nothing_left()


async def test_upload_for_an_unknown_user_is_404(api: Api) -> None:
    unknown = uuid.uuid4()
    response = await api.client.post(
        api.url(unknown), headers={**api.admin, "Content-Type": ZIP}, content=export_zip()
    )
    assert_error(response, 404, "not_found", str(unknown))
    assert entries(api.uploads) == []  # not even the user's folder


async def test_a_user_deleted_during_the_upload_gets_no_job(api: Api) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield ZIP_SIGNATURE
        await api.session.execute(delete(User).where(User.id == api.user.id))
        await api.session.commit()
        yield bytes(1000)

    response = await api.upload(body())

    assert_error(response, 404, "not_found", str(api.user.id))
    await api.assert_nothing_left()


async def test_a_client_that_disconnects_leaves_nothing_behind(
    api: Api, api_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    path = api.url()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", api.admin["Authorization"].encode()),
            (b"content-type", ZIP.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    # More than one write to disk arrives, then the client goes away.
    messages: Iterator[Message] = iter(
        [
            {"type": "http.request", "body": zip_like(WRITE_SIZE + 1), "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    async with LifespanManager(create_app(api_settings, sessionmaker=db_sessionmaker)) as app:
        await app.app(scope, receive, send)

    assert (sent[0]["type"], sent[0]["status"]) == ("http.response.start", 400)
    await api.assert_nothing_left()


async def session_whose_commit_fails(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_sessionmaker(request)() as session:
        yield session
        raise RuntimeError("the commit failed")


async def test_a_failed_commit_leaves_no_file(
    api: Api, api_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(api_settings, sessionmaker=db_sessionmaker)
    app.dependency_overrides[get_db_session] = session_whose_commit_fails
    async with asgi_client(app) as client:
        with pytest.raises(RuntimeError, match="the commit failed"):
            await replace(api, client=client).upload(export_zip())

    assert stored_files(api.uploads) == []


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../etc/passwd.zip", "passwd.zip"),
        ("C:\\Users\\ada\\Downloads\\my_spotify_data.zip", "my_spotify_data.zip"),
        ("exports/", "upload.zip"),
        ("..", "upload.zip"),
        ("bad\x00na\nme.zip", "badname.zip"),
        ("x" * 300 + ".zip", "x" * 255),
    ],
)
def test_file_names_keep_their_base_name_only(name: str, kept: str) -> None:
    assert safe_filename(name) == kept


@pytest.mark.parametrize("form", [False, True])
async def test_a_file_name_with_folders_stays_inside_the_upload_dir(
    api: Api, tmp_path: Path, form: bool
) -> None:
    name = "../../etc/passwd.zip"
    if form:
        response = await api.upload_form(name, export_zip())
    else:
        response = await api.upload(export_zip(), filename=name)

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["original_filename"] == "passwd.zip"
    assert stored_files(api.uploads) == [api.path_of(job)]
    assert entries(tmp_path) == ["uploads"]


async def test_openapi_describes_the_upload(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][
        "/admin/users/{user_id}/imports/zip"
    ]["post"]
    assert {"202", "404", "413", "415", "422"} <= set(operation["responses"])
    assert {ZIP, "multipart/form-data"} <= set(operation["requestBody"]["content"])


# --- listing and progress -------------------------------------------------------------


async def test_pages_walk_newest_first_and_filters_combine(api: Api) -> None:
    other = await add_user(api.session, "Other")
    await add_import_job(api.session, other.id, status="error")
    # Pairs share a creation time: the id breaks the tie.
    jobs = [
        await api.add_job(
            status="error" if n % 3 == 0 else "success",
            created_at=BASE + timedelta(minutes=n // 2),
        )
        for n in range(7)
    ]
    path, user_id = "/admin/import-jobs", str(api.user.id)

    items, pages = await walk_pages(api.client, path, api.admin, user_id=user_id, limit=3)

    assert pages == 3
    expected = sorted(jobs, key=lambda job: (job.created_at, job.id), reverse=True)
    assert [item["id"] for item in items] == [str(job.id) for job in expected]
    errors, _ = await walk_pages(
        api.client, path, api.admin, user_id=user_id, status="error", limit=2
    )
    assert [item["id"] for item in errors] == [
        str(job.id) for job in expected if job.status == "error"
    ]
    assert {item["status"] for item in errors} == {"error"}


async def test_a_bad_status_is_422(api: Api) -> None:
    response = await api.call("GET", "/admin/import-jobs", status="done")
    assert_error(response, 422, "validation_error", "status")


async def test_detail_shows_the_progress_of_a_running_import(api: Api) -> None:
    now = await db_now(api.session)
    job = await api.add_job(
        status="running",
        started_at=now - timedelta(seconds=100),
        file_size_bytes=1000,
        bytes_done=250,
        records_done=500,
        records_ingested=480,
        duplicates=20,
        skipped={"too_short": 3},
        format_detected="extended",
        attempts=1,
    )

    response = await api.call("GET", f"/admin/import-jobs/{job.id}")

    assert response.status_code == 200
    body = response.json()
    # 25 % in 100 s: 5 records a second, 300 s to go.
    assert body["progress"] == {"fraction": 0.25, "records_per_second": 5.0, "eta_seconds": 300.0}
    counts = ("records_ingested", "duplicates", "skipped", "format_detected", "attempts")
    assert [body[key] for key in counts] == [480, 20, {"too_short": 3}, "extended", 1]
    assert body["report"] is None


@pytest.mark.parametrize(
    ("fields", "progress"),
    [
        # Finished: the rate over start to finish, no estimate.
        (
            {"status": "success", "bytes_done": 1000, "records_done": 1000, "minutes": (0, 2)},
            {"fraction": 1.0, "records_per_second": 1000 / 120, "eta_seconds": None},
        ),
        # Not started yet, size unknown.
        (
            {"status": "pending", "file_size_bytes": None},
            {"fraction": None, "records_per_second": None, "eta_seconds": None},
        ),
        # Running, nothing read yet: no estimate from a fraction of 0.
        (
            {"status": "running", "records_done": 0, "minutes": (-1, None)},
            {"fraction": 0.0, "records_per_second": 0.0, "eta_seconds": None},
        ),
    ],
)
async def test_progress_of_other_states(
    api: Api, fields: dict[str, Any], progress: dict[str, Any]
) -> None:
    now = await db_now(api.session)
    started, finished = fields.pop("minutes", (None, None))
    if started is not None:
        fields["started_at"] = now + timedelta(minutes=started)
    if finished is not None:
        fields["finished_at"] = now + timedelta(minutes=finished)
    job = await api.add_job(**{"file_size_bytes": 1000, **fields})

    body = (await api.call("GET", f"/admin/import-jobs/{job.id}")).json()

    assert body["progress"] == pytest.approx(progress)


@pytest.mark.parametrize(("method", "action"), [("GET", ""), ("POST", "/cancel")])
async def test_unknown_import_job_is_404(api: Api, method: str, action: str) -> None:
    unknown = uuid.uuid4()
    response = await api.call(method, f"/admin/import-jobs/{unknown}{action}")
    assert_error(response, 404, "not_found", str(unknown))


# --- cancelling -----------------------------------------------------------------------


async def test_cancelling_a_pending_import_ends_it_and_deletes_its_file(api: Api) -> None:
    job_id = (await api.upload(export_zip())).json()["id"]
    assert len(stored_files(api.uploads)) == 1

    response = await api.call("POST", f"/admin/import-jobs/{job_id}/cancel")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["error"]) == ("cancelled", CANCELLED_ERROR)
    job = await api.job(job_id)
    assert (job.status, job.finished_at) == ("cancelled", await db_now(api.session))
    assert stored_files(api.uploads) == []


async def test_a_cancel_whose_commit_fails_keeps_the_job_and_its_file(
    api: Api, api_settings: ApiSettings, db_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    job_id = (await api.upload(export_zip())).json()["id"]
    app = create_app(api_settings, sessionmaker=db_sessionmaker)
    app.dependency_overrides[get_db_session] = session_whose_commit_fails
    async with asgi_client(app) as client:
        with pytest.raises(RuntimeError, match="the commit failed"):
            await replace(api, client=client).call("POST", f"/admin/import-jobs/{job_id}/cancel")

    # Still pending, so a collector may run it: its upload must still be there.
    assert (await api.job(job_id)).status == "pending"
    assert len(stored_files(api.uploads)) == 1


async def test_a_file_that_cannot_be_deleted_does_not_fail_the_cancel(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = (await api.upload(export_zip())).json()["id"]

    def refuse(path: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    response = await api.call("POST", f"/admin/import-jobs/{job_id}/cancel")

    assert response.status_code == 200, response.text
    assert (await api.job(job_id)).status == "cancelled"
    assert len(stored_files(api.uploads)) == 1
    assert "could not delete an import upload: PermissionError" in caplog.text


async def test_cancelling_never_deletes_outside_the_upload_dir(api: Api, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.zip"
    outside.write_bytes(b"keep me")
    job = await api.add_job(status="pending", storage_path=str(outside))

    response = await api.call("POST", f"/admin/import-jobs/{job.id}/cancel")

    assert response.json()["status"] == "cancelled"
    assert outside.read_bytes() == b"keep me"


async def test_cancelling_a_running_import_leaves_the_file_to_its_worker(api: Api) -> None:
    file = upload_path(api.uploads, api.user.id, uuid.uuid4())
    file.parent.mkdir()
    file.write_bytes(export_zip())
    job = await api.add_job(status="running", storage_path=str(file), lease_owner="worker-1")

    response = await api.call("POST", f"/admin/import-jobs/{job.id}/cancel")

    assert response.json()["status"] == "cancelled"
    stored = await api.job(job.id)
    assert (stored.status, stored.error) == ("cancelled", CANCELLED_ERROR)
    assert stored.lease_owner == "worker-1"
    assert file.exists()


@pytest.mark.parametrize("status", FINISHED_IMPORT_STATUSES)
async def test_a_finished_import_cannot_be_cancelled(api: Api, status: str) -> None:
    job = await api.add_job(status=status, error="as it was")

    response = await api.call("POST", f"/admin/import-jobs/{job.id}/cancel")

    assert_error(response, 409, "conflict", f"already ended with status '{status}'")
    stored = await api.job(job.id)
    assert (stored.status, stored.error) == (status, "as it was")
