"""/metrics: Prometheus text with our counters and llama-server's names, read the way the launcher reads them."""

from __future__ import annotations

LLAMACPP_NAMES = (
    "prompt_tokens_total",
    "prompt_seconds_total",
    "tokens_predicted_total",
    "tokens_predicted_seconds_total",
    "n_decode_total",
    "n_busy_slots_per_decode",
    "prompt_tokens_seconds",
    "kv_cache_usage_ratio",
    "kv_cache_tokens",
    "requests_processing",
    "requests_deferred",
)


def launcher_parse(text: str) -> dict[str, float]:
    """Sakura_Launcher_GUI's way: skip comments, split on a single space, keep the name after the last ':'."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.split(" ")
        values[name.rsplit(":", 1)[-1]] = float(value)
    return values


def samples(text: str) -> dict[str, float]:
    """Full sample names (labels included) → values."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


async def test_metrics_count_requests_tokens_and_expose_llamacpp_names(server, api) -> None:
    before = samples((await api.get("/metrics")).text)
    assert before["llamacpp:tokens_predicted_total"] == 0
    for max_tokens in (5, 7):
        reply = await api.post(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": max_tokens}
        )
        assert reply.status == 200
    prompt_tokens = sum(server.engine.count_tokens(prompt) for prompt, _ in server.engine.calls)
    reply = await api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.text
    parsed = launcher_parse(text)
    for name in LLAMACPP_NAMES:
        assert f"llamacpp:{name} " in text, name
        assert name in parsed
    assert parsed["tokens_predicted_total"] == 12
    assert parsed["prompt_tokens_total"] == prompt_tokens
    assert parsed["requests_processing"] == 0 and parsed["requests_deferred"] == 0
    values = samples(text)
    assert values["sakura_completion_tokens_total"] == 12
    assert values["sakura_prompt_tokens_total"] == prompt_tokens
    assert values['sakura_requests_total{route="/v1/chat/completions",status="200"}'] == 2
    assert values['sakura_generations_total{outcome="length"}'] == 2
    assert values["sakura_time_to_first_token_seconds_count"] == 2
    assert values['sakura_time_to_first_token_seconds_bucket{le="+Inf"}'] == 2
    assert values["sakura_slots"] == 4 and values["sakura_active_sequences"] == 0
    assert values["sakura_queue_depth"] == 0
    # HELP and TYPE come before every metric (also predicted_tokens_seconds and prompt_tokens_cached_total)
    assert text.count("# TYPE llamacpp:") == len(LLAMACPP_NAMES) + 2


async def test_errors_are_counted_by_status(api) -> None:
    await api.post("/v1/chat/completions", {"messages": []})
    await api.get("/nowhere")
    values = samples((await api.get("/metrics")).text)
    assert values['sakura_requests_total{route="/v1/chat/completions",status="400"}'] == 1
    assert values['sakura_requests_total{route="unmatched",status="404"}'] == 1
