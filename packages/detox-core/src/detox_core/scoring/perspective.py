"""``perspective``: the Perspective API, the scorer of every published RealToxicityPrompts result.

Spec: ``perspective[?qps=Q&attempts=N&backoff=S&attribute=A&timeout=S&cache=0|1]``. The key
comes from ``PERSPECTIVE_API_KEY``; ``PERSPECTIVE_API_URL`` overrides the endpoint and
``PERSPECTIVE_QPS`` the client-side rate limit (default 1 query/s, the default quota). Requests
that get 429 or 5xx (or a network error) are retried with exponential backoff, up to ``attempts``
times; a text whose request fails for good, or whose answer is malformed, gets ``None`` (missing,
never 0) and a counted warning. Successful scores are cached on disk (sqlite under
``cache_dir("perspective")``), keyed by scorer, endpoint, attribute and a hash of the text.

The operator stops serving the API after 2026: prefer an offline scorer for new work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detox_core.errors import DetoxError
from detox_core.paths import cache_dir

DEFAULT_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
API_VERSION = "v1alpha1"
SHUTDOWN_WARNING = (
    "warning: the Perspective API stops serving after 2026; its scores will not be reproducible "
    "later (prefer an offline scorer: profanity or classifier:PATH)"
)
_MAX_WORKERS = 8
_WARNINGS_SHOWN_PER_REASON = 3
_shutdown_warned = False


class PerspectiveSettings(BaseModel):
    """Endpoint, credentials and client behaviour of the Perspective scorer."""

    model_config = ConfigDict(frozen=True)

    api_key: str = Field(min_length=1, repr=False)
    url: str = DEFAULT_URL
    attribute: str = "TOXICITY"
    languages: tuple[str, ...] = ("en",)
    qps: float = Field(1.0, gt=0)
    attempts: int = Field(5, ge=1)
    backoff: float = Field(1.0, ge=0, description="first retry delay in seconds, doubled each time")
    max_backoff: float = Field(64.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    cache: bool = True
    cache_path: Path | None = None


_SPEC_KEYS = {"qps", "attempts", "backoff", "max_backoff", "attribute", "timeout", "cache", "url"}


def settings_from_spec(spec: str, env: Mapping[str, str] | None = None) -> PerspectiveSettings:
    """Build settings from ``perspective[?k=v&...]`` and the environment (the spec wins)."""
    env = os.environ if env is None else env
    _, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key not in _SPEC_KEYS:
            raise DetoxError(
                f"unknown perspective option {key!r}", f"use {', '.join(sorted(_SPEC_KEYS))}"
            )
        options[key] = value
    if "cache" in options:
        options["cache"] = options["cache"].lower() not in {"0", "false", "no", "off"}
    key = env.get("PERSPECTIVE_API_KEY", "")
    if not key:
        raise DetoxError(
            "the perspective scorer needs an API key and PERSPECTIVE_API_KEY is not set",
            "export PERSPECTIVE_API_KEY=..., or use an offline scorer: profanity or classifier:PATH",
        )
    if "url" not in options and env.get("PERSPECTIVE_API_URL"):
        options["url"] = env["PERSPECTIVE_API_URL"]
    if "qps" not in options and env.get("PERSPECTIVE_QPS"):
        options["qps"] = env["PERSPECTIVE_QPS"]
    try:
        return PerspectiveSettings(api_key=key, **options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DetoxError(f"bad perspective option {where}: {first['msg']}", "fix the spec") from exc


class RateLimiter:
    """Spaces request starts at least ``1/qps`` seconds apart, across threads."""

    def __init__(self, qps: float) -> None:
        self.interval = 1.0 / qps
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next request may start."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class ScoreCache:
    """A small sqlite table of successful scores keyed by (scorer, attribute, text hash)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, attribute TEXT, text_hash TEXT,"
                " value REAL, PRIMARY KEY (scorer, attribute, text_hash))"
            )

    @staticmethod
    def text_hash(text: str) -> str:
        """SHA-256 of the text (the text itself is not stored)."""
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, scorer: str, attribute: str, text: str) -> float | None:
        """The cached score, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM scores WHERE scorer=? AND attribute=? AND text_hash=?",
                (scorer, attribute, self.text_hash(text)),
            ).fetchone()
        return None if row is None else float(row[0])

    def put(self, scorer: str, attribute: str, text: str, value: float) -> None:
        """Store one score."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                (scorer, attribute, self.text_hash(text), value),
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def parse_response(payload: bytes, attribute: str) -> float | None:
    """``attributeScores.<attribute>.summaryScore.value`` from a response body, or None."""
    try:
        data = json.loads(payload)
        value = data["attributeScores"][attribute]["summaryScore"]["value"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


class PerspectiveScorer:
    """Perspective API client with a QPS limit, retries, an on-disk cache and missing scores."""

    def __init__(self, settings: PerspectiveSettings) -> None:
        global _shutdown_warned
        self.settings = settings
        attribute = settings.attribute.upper()
        self.attribute = attribute
        self.name = "perspective" if attribute == "TOXICITY" else f"perspective:{attribute}"
        self.version = API_VERSION
        self.requests_sent = 0
        self.warning_counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._limiter = RateLimiter(settings.qps)
        self._cache_key = f"{self.name}@{self.version}|{settings.url}"
        self._cache: ScoreCache | None = None
        if settings.cache:
            path = settings.cache_path or cache_dir("perspective") / "scores.sqlite"
            self._cache = ScoreCache(path)
        if not _shutdown_warned:
            sys.stderr.write(SHUTDOWN_WARNING + "\n")
            _shutdown_warned = True

    @property
    def missing_warnings(self) -> int:
        """How many texts got no score so far (all reasons)."""
        return sum(self.warning_counts.values())

    def _warn(self, reason: str, detail: str) -> None:
        with self._lock:
            self.warning_counts[reason] += 1
            count = self.warning_counts[reason]
        if count <= _WARNINGS_SHOWN_PER_REASON:
            more = (
                " (further ones counted, not shown)" if count == _WARNINGS_SHOWN_PER_REASON else ""
            )
            sys.stderr.write(f"warning: perspective: {detail}; score missing{more}\n")

    def _request_url(self) -> str:
        sep = "&" if "?" in self.settings.url else "?"
        return f"{self.settings.url}{sep}{urllib.parse.urlencode({'key': self.settings.api_key})}"

    def request_body(self, text: str) -> dict[str, Any]:
        """The JSON body of one ``comments:analyze`` request."""
        return {
            "comment": {"text": text},
            "requestedAttributes": {self.attribute: {}},
            "languages": list(self.settings.languages),
            "doNotStore": True,
        }

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay: float = self.settings.backoff * 2.0**attempt
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        return min(delay, self.settings.max_backoff)

    def _fetch(self, text: str) -> float | None:
        """Score one text, retrying on 429/5xx/network errors; None when it cannot be had."""
        body = json.dumps(self.request_body(text)).encode("utf-8")
        last_problem = "no attempt"
        for attempt in range(self.settings.attempts):
            self._limiter.wait()
            request = urllib.request.Request(
                self._request_url(),
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with self._lock:
                self.requests_sent += 1
            retry_after: str | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                    payload = response.read()
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
                if status in (401, 403):
                    raise DetoxError(
                        f"the Perspective API refused the key (HTTP {status})",
                        "check PERSPECTIVE_API_KEY and that the API is enabled for it",
                    ) from None
                if status != 429 and status < 500:
                    self._warn(f"http {status}", f"HTTP {status} for a text")
                    return None
                last_problem = f"HTTP {status}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_problem = f"network error ({exc})"
            else:
                value = parse_response(payload, self.attribute)
                if value is None:
                    self._warn("malformed", "malformed response body")
                return value
            if attempt + 1 < self.settings.attempts:
                time.sleep(self._delay(attempt, retry_after))
        self._warn("exhausted", f"gave up after {self.settings.attempts} attempts ({last_problem})")
        return None

    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Toxicity of each text (cached where possible); None where no score could be had."""
        results: list[float | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            cached = self._cache.get(self._cache_key, self.attribute, text) if self._cache else None
            if cached is not None:
                results[i] = cached
            elif not text.strip():
                self._warn("empty", "empty text (the API rejects it)")
            else:
                todo.setdefault(text, []).append(i)
        if not todo:
            return results
        workers = max(1, min(_MAX_WORKERS, math.ceil(self.settings.qps), len(todo)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            values = list(pool.map(self._fetch, todo))
        for (text, indices), value in zip(todo.items(), values, strict=True):
            if value is None:
                continue
            if self._cache is not None:
                self._cache.put(self._cache_key, self.attribute, text, value)
            for i in indices:
                results[i] = value
        return results
