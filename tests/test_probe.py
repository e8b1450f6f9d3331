"""`python -m s3store.probe` against the run's server, and the README's table it fills."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from s3store.probe import CHECKS, Finding, main, optimistic_verdict
from tests.conftest import REGION, SERVER

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
