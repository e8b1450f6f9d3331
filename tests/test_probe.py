"""`python -m s3store.probe` against the run's server, and the README's table it fills;
and against servers that answer otherwise: moto behind a filter, on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import boto3
import pytest

from s3store.probe import CHECKS, Finding, main, optimistic_verdict
from tests.conftest import REGION, SERVER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

README = Path(__file__).parents[1] / "README.md"
# The README's column title for each server the suite can run on.
COLUMNS = {"moto": "moto 5.2.5", "localstack": "LocalStack 4.14.0"}


def readme_table() -> list[list[str]]:
    """The rows of the first table under "## S3 servers", as lists of cells."""
    section = README.read_text().split("\n## S3 servers\n", 1)[1].split("\n## ", 1)[0]
    table = section[section.index("\n|") + 1 :].split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()]


def printed_rows(output: str) -> dict[str, str]:
    rows = [line for line in output.splitlines() if line.startswith("| ")][2:]
    return dict(tuple(row.strip("|").strip().split(" | ")) for row in rows)  # type: ignore[misc]


def test_the_readme_column_of_this_server_is_what_the_probe_prints(
    moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_url, region_name=REGION)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    status = main([moto_url, "--kms-key-id", key_id, "--name", COLUMNS[SERVER]])
    printed = capsys.readouterr().out

    header, _, *rows = readme_table()
    column = header.index(COLUMNS[SERVER])
    assert printed_rows(printed) == {row[0]: row[column] for row in rows}
    assert "optimistic concurrency (the default): works on this server" in printed
    assert status == 1  # moto verifies no checksum, LocalStack no KMS key id


def test_the_readme_table_has_a_row_for_every_check_and_no_other() -> None:
    _, _, *rows = readme_table()
    assert [row[0] for row in rows] == list(CHECKS)


def test_a_server_without_conditional_replace_is_named_with_what_to_set() -> None:
    findings = dict.fromkeys(CHECKS, Finding("as AWS", True))
    replace = "conditional replace (`If-Match`, the quoted ETag): current, then stale"
    findings[replace] = Finding("current ETag: 412 PreconditionFailed", False)
    verdict = optimistic_verdict(findings)
    assert "cannot work here" in verdict
    assert replace in verdict
    assert 'concurrency="last-writer-wins"' in verdict


def test_an_unreachable_server_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["http://127.0.0.1:9"]) == 2
    assert "127.0.0.1:9" in capsys.readouterr().err


# A filter sees each request first: it answers it itself, or passes it on to moto.
Filter = Callable[["WSGIEnvironment", "StartResponse", "WSGIApplication"], Iterable[bytes]]
VERSIONING = "versioning: an old version, a delete marker"


@contextmanager
def filtered_moto(answer: Filter) -> Iterator[str]:
    """moto's S3 and KMS on a free port of 127.0.0.1, every request through `answer`.
    moto keeps its buckets per process: this server sees those of the run's moto too."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    moto = DomainDispatcherApplication(create_backend_app)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return answer(environ, start_response, moto)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def s3_error(start_response: StartResponse, status: str, code: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{escape(code)}</Code>'
        "<Message>answered by the test's filter</Message></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def asks_for_versioning(environ: WSGIEnvironment) -> bool:
    """PutBucketVersioning, GetBucketVersioning, ListObjectVersions: `?versioning`, `?versions`."""
    query = environ.get("QUERY_STRING", "")
    return any(part.split("=")[0] in ("versions", "versioning") for part in query.split("&"))


def no_versioning(
    environ: WSGIEnvironment, start_response: StartResponse, moto: WSGIApplication
) -> Iterable[bytes]:
    """A server without versioning: 501 NotImplemented to each request of it (t05's filter)."""
    if asks_for_versioning(environ):
        return s3_error(start_response, "501 Not Implemented", "NotImplemented")
    return moto(environ, start_response)


def probe_buckets(url: str) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
    return {
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("s3store-probe-")
    }


def cells(row: str) -> list[str]:
    """A printed row's cells; an escaped `\\|` is inside a cell."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_a_server_without_versioning_is_a_row_and_the_probe_deletes_what_it_made(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue #19: exit 2, no table and the bucket left behind, before."""
    with filtered_moto(no_versioning) as url:
        before = probe_buckets(url)
        kms = boto3.client("kms", endpoint_url=url, region_name=REGION)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        status = main([url, "--kms-key-id", key_id])
        output = capsys.readouterr()
        assert probe_buckets(url) == before

    rows = printed_rows(output.out)
    assert rows.pop(VERSIONING) == (
        "**not implemented: PutBucketVersioning answered 501 NotImplemented**"
    )
    # The rest of the table: what moto answers, as its column in the README says.
    header, _, *readme_rows = readme_table()
    column = header.index(COLUMNS["moto"])
    moto = {row[0]: row[column] for row in readme_rows if row[0] != VERSIONING}
    assert rows == moto
    assert "optimistic concurrency (the default): works on this server" in output.out
    assert status == 1  # a row differs (moto's own, and versioning); nothing left behind
    assert output.err == ""


def test_what_the_probe_cannot_delete_it_names_and_exit_status_is_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refusing = True

    def no_versioning_nor_delete(
        environ: WSGIEnvironment, start_response: StartResponse, moto: WSGIApplication
    ) -> Iterable[bytes]:
        key = environ["PATH_INFO"].strip("/").partition("/")[2]
        if refusing and environ["REQUEST_METHOD"] == "DELETE" and key:  # DeleteBucket passes
            return s3_error(start_response, "403 Forbidden", "AccessDenied")
        return no_versioning(environ, start_response, moto)

    with filtered_moto(no_versioning_nor_delete) as url:
        before = probe_buckets(url)
        status = main([url])
        output = capsys.readouterr()
        left = probe_buckets(url) - before
        refusing = False
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
        keys = {}
        for bucket in left:
            keys[bucket] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
            for key in keys[bucket]:
                s3.delete_object(Bucket=bucket, Key=key)
            s3.delete_bucket(Bucket=bucket)

    assert status == 3
    assert len(printed_rows(output.out)) == len(CHECKS)  # the table all the same
    [bucket] = left
    assert output.err.count("\n") == 1
    assert f"bucket {bucket} (DeleteBucket answered 409 BucketNotEmpty);" in output.err
    assert keys[bucket]
    for key in keys[bucket]:
        assert f"object {key} (DeleteObject answered 403 AccessDenied)" in output.err


def test_what_a_server_answers_is_a_row_never_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Answers no S3 server should give: each ends its row in an error, on one line."""
    evil = "Evil | Code\n\u202e\u009b31m" + "x" * 500

    def nonsense(
        environ: WSGIEnvironment, start_response: StartResponse, moto: WSGIApplication
    ) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if method == "PUT" and path.endswith("/create"):
            return s3_error(start_response, "400 Bad Request", evil)
        if method == "PUT" and path.endswith("/replace"):  # no ETag
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        if method == "GET" and path.endswith("/checked"):  # cut short
            start_response("200 OK", [("Content-Length", "100")])
            return [b"body"]
        if method == "HEAD" and path.endswith("/described"):  # a date that is none
            start_response("200 OK", [("Content-Length", "0"), ("Last-Modified", "never")])
            return [b""]
        return moto(environ, start_response)

    with filtered_moto(nonsense) as url:
        before = probe_buckets(url)
        status = main([url])
        output = capsys.readouterr()
        assert probe_buckets(url) == before

    assert status == 1
    assert output.err == ""
    lines = output.out.splitlines()
    assert all(char.isprintable() for line in lines for char in line)
    rows = {row[0]: row[1] for row in map(cells, lines) if row and row[0] in CHECKS}
    assert len(rows) == len(CHECKS)
    create, replace, _, _, _, checksum, metadata, *_ = CHECKS
    assert rows[create].startswith(r"**error: PutObject answered 400 Evil \| Code\n\u202e\x9b31m")
    assert len(rows[create]) < 200
    assert rows[replace] == "**error: UnexpectedAnswer: PutObject answered without ETag**"
    assert rows[checksum].startswith("**error: ClientPayloadError: ")
    assert rows[metadata].startswith("**error: ValueError: Invalid timestamp")
