"""A model per registered provider for tests, named as each vendor names its models (Azure: deployment
names; the emulated Azure resource has one deployment per global-batch model, named after it)."""

from __future__ import annotations

MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
    "azure": "gpt-4o-mini",
    "groq": "llama-3.1-8b-instant",
    "deepinfra": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "doubleword": "Qwen/Qwen3-14B-FP8",
    "nebius": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "novita": "deepseek/deepseek-r1",
    "openai-compatible": "my-gateway-model",
}
VENDORS = ("azure", "groq", "deepinfra", "doubleword", "nebius", "novita", "openai-compatible")
