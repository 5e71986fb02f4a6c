"""The served OpenAPI document against a real running server: schemathesis generates requests from it for every
operation, valid ones and (negative mode) invalid ones, and checks each answer: no 5xx, and the answer (JSON or
each server-sent event) matches the document.

The server is ``sakura run`` on llama.cpp with a tiny GGUF, a small context (generations stay short) and one
decoding thread (two threads spinning on two busy cores can slow decoding tenfold). Bounded: a fixed number of
examples per operation and mode, and a timeout per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

#: Examples schemathesis generates per operation (method and path) and mode.
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
#: Seconds one request may take.
REQUEST_TIMEOUT = 30


@pytest.fixture(scope="module")
def fuzzed_server(sakura_launcher, tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    process = sakura_launcher(tiny_gguf, tmp_path_factory.mktemp("schemathesis"), "-c", "64", "-np", "4", "-t", "1")
    yield process
    process.stop()


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
def test_every_operation_conforms_to_the_document(fuzzed_server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures: list[str] = []
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # no body to get wrong (a GET, or a POST that acts on the path's job)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        def conforms(case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=REQUEST_TIMEOUT)

        try:
            conforms()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert fuzzed_server.get("/health")[0] == 200
