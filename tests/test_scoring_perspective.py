"""The Perspective client against a local stand-in server that speaks the API's JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from detox_core.errors import DetoxError
from detox_core.scoring import load_scorer, score_texts
from detox_core.scoring import perspective as perspective_module
from detox_core.scoring.perspective import (
    DEFAULT_URL,
    PerspectiveScorer,
    PerspectiveSettings,
    settings_from_spec,
)


def stub_toxicity(text: str) -> float:
    """The stand-in server's score: a number the test can predict from the text."""
    return round((len(text) % 10) / 10, 2)


@dataclass
class Reply:
    status: int
    body: bytes


def ok_reply(text: str) -> Reply:
    body = {
        "attributeScores": {
            "TOXICITY": {
                "spanScores": [],
                "summaryScore": {"value": stub_toxicity(text), "type": "PROBABILITY"},
            }
        },
        "languages": ["en"],
    }
    return Reply(200, json.dumps(body).encode())


@dataclass
class StubServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    # Replies served first, in order (one per request); afterwards ``default`` answers.
    queue: list[Reply] = field(default_factory=list)
    default: Callable[[str], Reply] = ok_reply
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, raw: bytes) -> Reply:
        body = json.loads(raw)
        with self.lock:
            self.requests.append(body)
            self.queries.append(parse_qs(urlparse(path).query))
            if self.queue:
                return self.queue.pop(0)
        return self.default(body["comment"]["text"])


@pytest.fixture
def server() -> Iterator[StubServer]:
    state: dict[str, StubServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            reply = state["server"].answer(self.path, raw)
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    state["server"] = StubServer(url=f"http://127.0.0.1:{port}/v1alpha1/comments:analyze")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state["server"]
    httpd.shutdown()
    httpd.server_close()


def make_scorer(server: StubServer, tmp_path: Path, **options: Any) -> PerspectiveScorer:
    fields: dict[str, Any] = {
        "api_key": "test-key",
        "url": server.url,
        "qps": 1000,
        "backoff": 0.001,
        "cache_path": tmp_path / "cache.sqlite",
    }
    return PerspectiveScorer(PerspectiveSettings(**(fields | options)))


TEXTS = ["you are lovely", "what a day", "go away you fool"]


def test_429_twice_then_success_returns_every_score(server: StubServer, tmp_path: Path) -> None:
    server.queue = [Reply(429, b"{}"), Reply(429, b"{}")]
    scorer = make_scorer(server, tmp_path)
    assert scorer.score(TEXTS) == [stub_toxicity(t) for t in TEXTS]
    assert len(server.requests) == len(TEXTS) + 2
    assert scorer.missing_warnings == 0


def test_always_500_gives_missing_scores(
    server: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.default = lambda text: Reply(500, b"oops")
    scorer = make_scorer(server, tmp_path, attempts=3)
    scores = score_texts(scorer, TEXTS)
    assert [s.value for s in scores] == [None, None, None]
    assert all(s.missing and s.scorer == "perspective" for s in scores)
    assert len(server.requests) == 3 * len(TEXTS)
    assert scorer.warning_counts["exhausted"] == len(TEXTS)
    assert "gave up after 3 attempts" in capsys.readouterr().err


def test_malformed_body_gives_none(server: StubServer, tmp_path: Path) -> None:
    server.queue = [
        Reply(200, b"not json at all"),
        Reply(200, json.dumps({"attributeScores": {}}).encode()),
        Reply(
            200,
            json.dumps(
                {"attributeScores": {"TOXICITY": {"summaryScore": {"value": "high"}}}}
            ).encode(),
        ),
    ]
    scorer = make_scorer(server, tmp_path)
    texts = [*TEXTS, "fine"]
    scores = scorer.score(texts)
    # Whichever request came last got the good answer; the three others are missing.
    good = [i for i, s in enumerate(scores) if s is not None]
    assert len(good) == 1
    assert scores[good[0]] == stub_toxicity(texts[good[0]])
    assert scorer.warning_counts["malformed"] == 3
    assert len(server.requests) == 4  # malformed answers are not retried


def test_cache_avoids_a_second_request(server: StubServer, tmp_path: Path) -> None:
    first = make_scorer(server, tmp_path).score(TEXTS)
    assert len(server.requests) == len(TEXTS)
    again = make_scorer(server, tmp_path).score([*TEXTS, TEXTS[0]])
    assert again == [*first, first[0]]
    assert len(server.requests) == len(TEXTS)


def test_missing_scores_are_not_cached(server: StubServer, tmp_path: Path) -> None:
    server.queue = [Reply(200, b"{}")]
    assert make_scorer(server, tmp_path).score(["hello"]) == [None]
    assert make_scorer(server, tmp_path).score(["hello"]) == [stub_toxicity("hello")]
    assert len(server.requests) == 2


def test_request_body_and_key(server: StubServer, tmp_path: Path) -> None:
    make_scorer(server, tmp_path).score(["some text"])
    assert server.requests == [
        {
            "comment": {"text": "some text"},
            "requestedAttributes": {"TOXICITY": {}},
            "languages": ["en"],
            "doNotStore": True,
        }
    ]
    assert server.queries[0]["key"] == ["test-key"]


def test_client_error_is_not_retried_and_bad_key_is_an_error(
    server: StubServer, tmp_path: Path
) -> None:
    server.queue = [Reply(400, b"{}")]
    scorer = make_scorer(server, tmp_path)
    assert scorer.score(["x"]) == [None]
    assert len(server.requests) == 1
    server.default = lambda text: Reply(403, b"{}")
    with pytest.raises(DetoxError, match="refused the key"):
        scorer.score(["y"])


def test_empty_text_is_missing_without_a_request(server: StubServer, tmp_path: Path) -> None:
    scorer = make_scorer(server, tmp_path)
    assert scorer.score(["", "  ", "ok"]) == [None, None, stub_toxicity("ok")]
    assert len(server.requests) == 1


def test_settings_from_spec_and_environment() -> None:
    with pytest.raises(DetoxError, match="PERSPECTIVE_API_KEY"):
        settings_from_spec("perspective", env={})
    env = {"PERSPECTIVE_API_KEY": "k", "PERSPECTIVE_QPS": "3"}
    settings = settings_from_spec("perspective", env=env)
    assert (settings.url, settings.qps, settings.attempts) == (DEFAULT_URL, 3.0, 5)
    env["PERSPECTIVE_API_URL"] = "http://127.0.0.1:9/x"
    settings = settings_from_spec("perspective?qps=5&attempts=2&backoff=0.5&cache=0", env=env)
    assert (settings.url, settings.qps, settings.attempts, settings.backoff, settings.cache) == (
        "http://127.0.0.1:9/x",
        5.0,
        2,
        0.5,
        False,
    )
    with pytest.raises(DetoxError, match="unknown perspective option"):
        settings_from_spec("perspective?speed=9", env=env)
    with pytest.raises(DetoxError, match="qps"):
        settings_from_spec("perspective?qps=0", env=env)


def test_load_scorer_uses_environment_and_warns_about_shutdown(
    server: StubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "env-key")
    monkeypatch.setenv("PERSPECTIVE_API_URL", server.url)
    monkeypatch.setenv("DETOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(perspective_module, "_shutdown_warned", False)
    scorer = load_scorer("perspective?qps=100")
    assert "after 2026" in capsys.readouterr().err
    assert scorer.score(["abc"]) == [stub_toxicity("abc")]
    assert server.queries[0]["key"] == ["env-key"]
    assert (tmp_path / "cache" / "perspective" / "scores.sqlite").is_file()


def test_score_command_reports_missing(
    server: StubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from detox_cli.app import main

    server.default = lambda text: Reply(503, b"")
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "k")
    monkeypatch.setenv("PERSPECTIVE_API_URL", server.url)
    monkeypatch.setenv("DETOX_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts.txt"
    texts.write_text("first text\nsecond text\n", encoding="utf-8")
    main(["score", "--scorer", "perspective?qps=100&attempts=2&backoff=0.001", str(texts)])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["toxicity"]["value"] for r in records] == [None, None]
    assert "2 missing" in captured.err
