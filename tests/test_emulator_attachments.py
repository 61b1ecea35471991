"""Images and PDFs in emulated batches (#22): the Files APIs, the part checks, and answers that name
the attachment's sha256, driven through the official SDKs over HTTP.

Each provider: inline and by-reference parts accepted, the results parsed by the SDK's own types,
the answer naming the right file; each refusal with the provider's wording; another key's file and
a deleted file refused as the API refuses an unknown one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from anthropic.types.beta.messages import BetaMessageBatchIndividualResponse
from anthropic.types.messages import MessageBatchIndividualResponse
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from llmbulk.emulator import EmulatorConfig, EmulatorServer

KEY, OTHER = "key-one", "key-two"
BETA = "files-api-2025-04-14"


def _png(width: int = 1, height: int = 1, salt: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"c\x00" + salt) + chunk(b"IEND", b"")


def _pdf(pages: int = 1, salt: bytes = b"") -> bytes:
    objects = b"".join(b"%d 0 obj<</Type /Page>>endobj\n" % (i + 3) for i in range(pages))
    return b"%PDF-1.4\n1 0 obj<</Type /Catalog>>endobj\n2 0 obj<</Type /Pages>>endobj\n" + objects + salt + b"%%EOF"


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
PNG, PNG2, PDF = _png(salt=b"one"), _png(salt=b"two"), _pdf(2)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "emu", config) as srv:
        yield srv


# ---- OpenAI -------------------------------------------------------------------------------------


def _openai(server: EmulatorServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.openai_base_url, _strict_response_validation=True, max_retries=0)


def _openai_run(client: openai.OpenAI, bodies: list[dict[str, Any]], url: str) -> dict[str, dict[str, Any]]:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": url, "body": b} for i, b in enumerate(bodies)]
    payload = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    uploaded = client.files.create(file=("in.jsonl", payload, "application/jsonl"), purpose="batch")
    batch = client.batches.retrieve(client.batches.create(input_file_id=uploaded.id, endpoint=url,  # type: ignore[arg-type]
                                                          completion_window="24h").id)  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            for line in client.files.content(file_id).text.splitlines():
                record = orjson.loads(line)
                out[record["custom_id"]] = record["response"]
    return out


def _chat(*parts: dict[str, Any], text: str = "Describe this.") -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]}


def _image(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{_b64(data)}"}}


def test_openai_inline_and_file_parts_answer_with_their_sha256(server: EmulatorServer) -> None:
    client = _openai(server)
    pdf = client.files.create(file=("a.pdf", PDF, "application/pdf"), purpose="user_data")
    png = client.files.create(file=("a.png", PNG2, "image/png"), purpose="user_data")
    chat = _openai_run(client, [
        _chat(_image(PNG)),
        _chat({"type": "file", "file": {"file_id": pdf.id}}),
        _chat({"type": "file", "file": {"filename": "x.pdf", "file_data": f"data:application/pdf;base64,{_b64(PDF)}"}},
              _image(PNG2)),
        _chat({"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}),
    ], "/v1/chat/completions")  # fmt: skip
    texts = [ChatCompletion.model_validate(chat[f"r{i}"]["body"]).choices[0].message.content for i in range(4)]
    assert texts[0] and texts[0].endswith(f"[seen: image/png {_sha(PNG)[:12]}]")
    assert texts[1] and texts[1].endswith(f"[seen: application/pdf {_sha(PDF)[:12]}]")
    assert texts[2] and texts[2].endswith(f"[seen: application/pdf {_sha(PDF)[:12]}, image/png {_sha(PNG2)[:12]}]")
    url_sha = _sha(b"https://example.com/cat.jpg")
    assert texts[3] and texts[3].endswith(f"[seen: image/jpeg {url_sha[:12]}]")
    responses = _openai_run(client, [{"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is it?"}, {"type": "input_image", "file_id": png.id},
        {"type": "input_file", "file_id": pdf.id}]}]}], "/v1/responses")  # fmt: skip
    answer = Response.model_validate(responses["r0"]["body"]).output_text
    assert answer.endswith(f"[seen: image/png {_sha(PNG2)[:12]}, application/pdf {_sha(PDF)[:12]}]")


def test_openai_refuses_bad_parts_line_by_line(server: EmulatorServer) -> None:
    client, other = _openai(server), _openai(server, OTHER)
    theirs = other.files.create(file=("b.pdf", PDF, "application/pdf"), purpose="user_data")
    gone = client.files.create(file=("c.pdf", PDF, "application/pdf"), purpose="user_data")
    client.files.delete(gone.id)
    batch_file = client.files.create(file=("d.pdf", PDF, "application/pdf"), purpose="batch")
    bodies = [
        _chat({"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}),
        _chat({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not-base64@@"}}),
        _chat({"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}),
        _chat(_image(b"plain text, no image", "image/png")),
        _chat({"type": "file", "file": {"file_id": theirs.id}}),
        _chat({"type": "file", "file": {"file_id": gone.id}}),
        _chat({"type": "file", "file": {"file_id": batch_file.id}}),
        _chat({"type": "file", "file": {"filename": "x.pdf", "file_data": f"data:image/png;base64,{_b64(PNG)}"}}),
        _chat({"type": "image_url", "image_url": {"url": "not a url"}}),
    ]
    results = _openai_run(client, bodies, "/v1/chat/completions")
    errors = [(results[f"r{i}"]["status_code"], results[f"r{i}"]["body"]["error"]) for i in range(len(bodies))]
    where = "messages[0].content[1]"
    assert errors[0][1]["message"].endswith("but got unsupported MIME type 'image/svg+xml'.")
    assert errors[0][1]["param"] == f"{where}.image_url.url"
    assert errors[1][1]["message"] == "Invalid base64 image_url."
    assert errors[2][1]["message"].endswith("but got empty base64-encoded bytes.")
    assert errors[3][1]["code"] == "invalid_image_format"
    assert errors[3][1]["message"].startswith("You uploaded an unsupported image.")
    assert errors[4] == (404, {"message": f"No such File object: {theirs.id}", "type": "invalid_request_error",
                               "param": f"{where}.file.file_id", "code": None})  # fmt: skip
    assert errors[5][0] == 404 and errors[5][1]["message"] == f"No such File object: {gone.id}"
    assert errors[6][0] == 400 and "purpose 'batch'" in errors[6][1]["message"]
    assert "application/pdf MIME type" in errors[7][1]["message"] and "'image/png'" in errors[7][1]["message"]
    assert errors[8][1]["message"].endswith("Expected a valid URL, but got a value with an invalid format.")


def test_openai_files_belong_to_the_key_that_uploaded_them(server: EmulatorServer) -> None:
    client, other = _openai(server), _openai(server, OTHER)
    mine = client.files.create(file=("a.png", PNG, "image/png"), purpose="user_data")
    assert mine.purpose == "user_data"
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        other.files.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(mine.id)
    assert mine.id not in [f.id for f in other.files.list()]
    assert mine.id in [f.id for f in client.files.list()]
    records = [p.read_text() for p in (server.emulator.dir / "files").glob("*.json")]
    assert records and all(KEY not in r and OTHER not in r for r in records)  # a hash of the key, never the key


# ---- Anthropic ----------------------------------------------------------------------------------


def _anthropic(server: EmulatorServer, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=server.anthropic_base_url, _strict_response_validation=True,
                               max_retries=0)  # fmt: skip


def _ask(*blocks: dict[str, Any], text: str = "Describe this.", **params: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": text}, *blocks]
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": content}],
        **params,
    }


def _b64_block(kind: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"type": kind, "source": {"type": "base64", "media_type": mime, "data": _b64(data)}}


def _file_block(kind: str, file_id: str) -> dict[str, Any]:
    return {"type": kind, "source": {"type": "file", "file_id": file_id}}


def _anthropic_beta_run(client: anthropic.Anthropic, params: list[dict[str, Any]]) -> dict[str, Any]:
    requests = [{"custom_id": f"r{i}", "params": p} for i, p in enumerate(params)]
    batch = client.beta.messages.batches.create(requests=requests, betas=[BETA])  # type: ignore[arg-type]
    assert client.beta.messages.batches.retrieve(batch.id, betas=[BETA]).processing_status == "ended"
    lines = {r.custom_id: r for r in client.beta.messages.batches.results(batch.id, betas=[BETA])}
    for line in lines.values():
        BetaMessageBatchIndividualResponse.model_validate(line.model_dump(), strict=False)
    return {k: v.result for k, v in lines.items()}


def test_anthropic_files_api_beta_and_ga_shapes(server: EmulatorServer) -> None:
    client, other = _anthropic(server), _anthropic(server, OTHER)
    beta = client.beta.files.upload(file=("a.png", PNG, "image/png"))
    ga = client.files.upload(file=("b.pdf", PDF, "application/pdf"))
    assert (beta.type, beta.mime_type, beta.size_bytes, beta.downloadable) == ("file", "image/png", len(PNG), False)
    assert ga.mime_type == "application/pdf" and ga.expires_at is None
    page = client.beta.files.with_raw_response.list(limit=1, betas=[BETA]).http_response.json()
    assert [f["id"] for f in page["data"]] == [ga.id] and page["has_more"] and "expires_at" not in page["data"][0]
    first = client.files.list(limit=1)
    assert first.next_page == f"page_{ga.id}" and [f.id for f in first.get_next_page().data] == [beta.id]
    assert [f.id for f in client.files.list()] == [ga.id, beta.id]
    assert client.beta.files.retrieve_metadata(beta.id).filename == "a.png"
    with pytest.raises(anthropic.NotFoundError, match=f"File not found: {beta.id}"):
        other.beta.files.retrieve_metadata(beta.id)
    assert other.files.list().data == []
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.files.download(beta.id)
    assert refused.value.error_code == "file_not_downloadable"
    deleted = client.beta.files.delete(beta.id)
    assert (deleted.id, deleted.type) == (beta.id, "file_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.files.retrieve_metadata(beta.id)


def test_anthropic_inline_and_file_blocks_answer_with_their_sha256(server: EmulatorServer) -> None:
    client = _anthropic(server)
    image = client.beta.files.upload(file=("a.png", PNG2, "image/png"))
    pdf = client.beta.files.upload(file=("a.pdf", PDF, "application/pdf"))
    results = _anthropic_beta_run(client, [
        _ask(_b64_block("image", PNG, "image/png")),
        _ask(_file_block("image", image.id), _file_block("document", pdf.id)),
        _ask(_b64_block("document", PDF, "application/pdf")),
        _ask({"type": "image", "source": {"type": "url", "url": "https://example.com/a.webp"}}),
    ])  # fmt: skip
    texts = [results[f"r{i}"].message.content[0].text for i in range(4)]
    assert texts[0].endswith(f"[seen: image/png {_sha(PNG)[:12]}]")
    assert texts[1].endswith(f"[seen: image/png {_sha(PNG2)[:12]}, application/pdf {_sha(PDF)[:12]}]")
    assert texts[2].endswith(f"[seen: application/pdf {_sha(PDF)[:12]}]")
    assert texts[3].endswith(f"[seen: image/webp {_sha(b'https://example.com/a.webp')[:12]}]")
    # The generally available path (no beta header) takes file sources too: anthropic 2.16 types them.
    batch = client.messages.batches.create(
        requests=[{"custom_id": "g", "params": _ask(_file_block("image", image.id))}]
    )  # type: ignore[list-item]
    line = next(iter(client.messages.batches.results(batch.id)))
    MessageBatchIndividualResponse.model_validate(line.model_dump())
    assert line.result.type == "succeeded" and _sha(PNG2)[:12] in line.result.message.content[0].text  # type: ignore[union-attr]


def test_anthropic_refuses_bad_blocks_as_errored_results(server: EmulatorServer) -> None:
    client, other = _anthropic(server), _anthropic(server, OTHER)
    theirs = other.beta.files.upload(file=("t.png", PNG, "image/png"))
    gone = client.beta.files.upload(file=("g.png", PNG, "image/png"))
    client.beta.files.delete(gone.id)
    text_file = client.beta.files.upload(file=("n.txt", b"just words", "text/plain"))
    huge = _png(salt=b"x" * (5 * 1024 * 1024))
    params = [
        _ask(_b64_block("image", JPEG, "image/png")),
        _ask(_b64_block("image", PNG, "image/bmp")),
        _ask({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@@"}}),
        _ask({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}),
        _ask(_b64_block("image", huge, "image/png")),
        _ask(_b64_block("image", _png(9000, 10), "image/png")),
        _ask(_file_block("image", theirs.id)),
        _ask(_file_block("image", gone.id)),
        _ask(_file_block("image", text_file.id)),
        _ask(_b64_block("document", PNG, "application/pdf")),
        _ask(_b64_block("document", _pdf(101), "application/pdf")),
    ]
    results = _anthropic_beta_run(client, params)
    messages = [
        (r.type, r.error.error.type, r.error.error.message) for r in (results[f"r{i}"] for i in range(len(params)))
    ]
    where = "messages.0.content.1"
    assert messages[0] == (
        "errored",
        "invalid_request_error",
        f"{where}.image.source.base64.data: Image does not match the provided media type image/png",
    )
    assert messages[1][2] == (f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                              "'image/gif' or 'image/webp'")  # fmt: skip
    assert messages[2][2] == f"{where}.image.source.base64.data: Invalid base64 data"
    assert messages[3][2] == f"{where}.image.source.base64: image cannot be empty"
    assert (
        messages[4][2] == f"{where}.image.source.base64: image exceeds 5 MB maximum: {len(huge)} bytes > 5242880 bytes"
    )
    assert messages[5][2].endswith("At least one of the image dimensions exceed max allowed size: 8000 pixels")
    assert messages[6] == ("errored", "not_found_error", f"File not found: {theirs.id}")
    assert messages[7] == ("errored", "not_found_error", f"File not found: {gone.id}")
    assert "not a supported image type" in messages[8][2]
    assert messages[9][2] == f"{where}.document.source.base64.data: The PDF specified was not valid."
    assert messages[10][2] == "A maximum of 100 PDF pages may be provided."


# ---- Gemini -------------------------------------------------------------------------------------


def _gemini(server: EmulatorServer, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, vertexai=False, http_options=genai_types.HttpOptions(
        base_url=server.gemini_base_url, api_version="v1beta"))  # fmt: skip


def _upload(client: genai.Client, data: bytes, mime: str) -> genai_types.File:
    return client.files.upload(file=io.BytesIO(data), config={"mime_type": mime, "display_name": "x"})


def _gemini_run(client: genai.Client, parts_list: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    lines = [{"key": f"k{i}", "request": {"contents": [{"role": "user", "parts": [{"text": "Describe."}, *parts]}]}}
             for i, parts in enumerate(parts_list)]  # fmt: skip
    src = _upload(client, b"".join(orjson.dumps(x) + b"\n" for x in lines), "application/jsonl")
    job = client.batches.create(model="gemini-2.5-flash", src=src.name or "", config={"display_name": "t"})
    done = client.batches.get(name=job.name or "")
    assert done.dest and done.dest.file_name
    return [orjson.loads(x) for x in client.files.download(file=done.dest.file_name).splitlines()]


def test_gemini_inline_and_file_parts_answer_with_their_sha256(server: EmulatorServer) -> None:
    client = _gemini(server)
    image = _upload(client, PNG2, "image/png")
    pdf = _upload(client, PDF, "application/pdf")
    assert image.expiration_time and image.create_time
    assert (image.expiration_time - image.create_time).total_seconds() == 48 * 3600
    results = _gemini_run(client, [
        [{"inlineData": {"mimeType": "image/png", "data": _b64(PNG)}}],
        [{"fileData": {"mimeType": "image/png", "fileUri": image.uri}},
         {"file_data": {"mime_type": "application/pdf", "file_uri": f"https://generativelanguage.googleapis.com/v1beta/{pdf.name}"}}],
        [{"inline_data": {"mime_type": "application/pdf", "data": _b64(PDF)}}],
    ])  # fmt: skip
    texts = [genai_types.GenerateContentResponse.model_validate(r["response"]).text or "" for r in results]
    assert texts[0].endswith(f"[seen: image/png {_sha(PNG)[:12]}]")
    assert texts[1].endswith(f"[seen: image/png {_sha(PNG2)[:12]}, application/pdf {_sha(PDF)[:12]}]")
    assert texts[2].endswith(f"[seen: application/pdf {_sha(PDF)[:12]}]")


def test_gemini_refuses_bad_parts_per_item(server: EmulatorServer) -> None:
    client, other = _gemini(server), _gemini(server, OTHER)
    theirs = _upload(other, PNG, "image/png")
    gone = _upload(client, PNG, "image/png")
    client.files.delete(name=gone.name or "")
    with pytest.raises(genai_errors.ClientError) as denied:
        client.files.get(name=theirs.name or "")
    assert denied.value.code == 403
    results = _gemini_run(client, [
        [{"inlineData": {"mimeType": "image/png", "data": "@@@"}}],
        [{"inlineData": {"mimeType": "image/gif", "data": _b64(b"GIF89a\x01\x00\x01\x00")}}],
        [{"inlineData": {"mimeType": "image/png", "data": _b64(b"no image here")}}],
        [{"fileData": {"mimeType": "image/png", "fileUri": theirs.uri}}],
        [{"fileData": {"mimeType": "image/png", "fileUri": gone.uri}}],
        [{"inlineData": {"mimeType": "image/png", "data": _b64(_png(salt=b"z" * (21 * 1024 * 1024)))}}],
    ])  # fmt: skip
    errors = [r["error"] for r in results]
    assert errors[0] == {"code": 3, "message": "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), "
                                              'Base64 decoding failed for "@@@"'}  # fmt: skip
    assert errors[1] == {"code": 3, "message": "Unsupported MIME type: image/gif"}
    assert errors[2]["message"].startswith("Unable to process input image.")
    short = (theirs.name or "").removeprefix("files/")
    assert errors[3] == {
        "code": 7,
        "message": f"You do not have permission to access the File {short} or it may not exist.",
    }
    assert errors[4]["code"] == 7
    assert errors[5] == {"code": 3, "message": "Request payload size exceeds the limit: 20971520 bytes."}


# ---- the answer rule ----------------------------------------------------------------------------


def test_labels_and_fields_follow_the_file_not_the_prompt(server: EmulatorServer) -> None:
    """The contract: choice and schema answers are seeded by the attachments' sha256 and the model."""
    client = _anthropic(server)
    files = [_png(salt=bytes([i])) for i in range(8)]
    wordings = ["Is the photo one of cat, dog or bird?", "Label the photo as cat, dog or bird."]
    params = [_ask(_b64_block("image", f, "image/png"), text=w) for w in wordings for f in files]
    results = _anthropic_beta_run(client, params)
    labels = [results[f"r{i}"].message.content[0].text for i in range(len(params))]
    assert labels[:8] == labels[8:] and set(labels) <= {"cat", "dog", "bird"} and len(set(labels)) > 1


def test_expired_files_are_refused_by_reference(tmp_path: Path) -> None:
    """Anthropic `expires_in_seconds` (SDK docstring: 3600..7776000) and Gemini's 48 h: past the
    deadline a reference fails as the APIs say (Anthropic `file_expired`, Gemini 403)."""
    skew = [0.0]
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0,
                            jitter=0, clock=lambda: time.time() + skew[0])  # fmt: skip
    with EmulatorServer(tmp_path / "emu", config) as server:
        claude, gemini = _anthropic(server), _gemini(server)
        short = claude.files.upload(file=("s.png", PNG, "image/png"), expires_in_seconds=3600)
        assert short.expires_at is not None
        assert short.expires_at.timestamp() - short.created_at.timestamp() == pytest.approx(3600, abs=0.01)
        with pytest.raises(anthropic.BadRequestError, match="expires_in_seconds"):
            claude.files.upload(file=("s.png", PNG, "image/png"), expires_in_seconds=60)
        kept = _upload(gemini, PNG, "image/png")
        skew[0] += 48 * 3600 + 1
        result = _anthropic_beta_run(claude, [_ask(_file_block("image", short.id))])["r0"]
        assert (result.error.error.type, result.error.error.message) == (
            "not_found_error",
            f"File {short.id} has expired.",
        )
        with pytest.raises(genai_errors.ClientError) as gone:
            gemini.files.get(name=kept.name or "")
        assert gone.value.code == 403
        errors = _gemini_run(gemini, [[{"fileData": {"mimeType": "image/png", "fileUri": kept.uri}}]])
        assert errors[0]["error"]["code"] == 7


def test_schema_fields_follow_the_file_on_openai_and_gemini_inline_requests(server: EmulatorServer) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b", "c", "d"]},
              "score": {"type": "integer"}}, "required": ["label", "score"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}
    files = [_png(salt=bytes([i])) for i in range(6)]
    bodies = [{**_chat(_image(f), text=w), "response_format": fmt} for w in ("Classify.", "What is it?") for f in files]
    results = _openai_run(_openai(server), bodies, "/v1/chat/completions")
    answers = [ChatCompletion.model_validate(results[f"r{i}"]["body"]).choices[0].message.content for i in range(12)]
    assert answers[:6] == answers[6:] and len(set(answers)) > 1
    client = _gemini(server)
    requests = [genai_types.InlinedRequest(contents=[genai_types.Content(role="user", parts=[
        genai_types.Part(text=w), genai_types.Part(inline_data=genai_types.Blob(mime_type="image/png", data=f))])])
        for w in ("Is it one of red, green or blue?", "Label it as red, green or blue.") for f in files]  # fmt: skip
    job = client.batches.create(model="gemini-2.5-flash", src=requests, config={"display_name": "inline"})
    done = client.batches.get(name=job.name or "")
    assert done.dest and done.dest.inlined_responses
    labels = [(r.response.text if r.response else None) for r in done.dest.inlined_responses]
    assert labels[:6] == labels[6:] and set(labels) <= {"red", "green", "blue"} and len(set(labels)) > 1
