"""Images and PDFs attached to requests (#22): sources, placement, provider-native parts, limits, request keys.

End-to-end cases run the real CLI with `--emulate` (real SDKs over real HTTP to the emulator); the
shard files show the exact lines sent.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Outcome

from llmbulk.models import Task
from llmbulk.providers.anthropic.lines import RequestEncoder
from llmbulk.providers.gemini.lines import encode_line
from llmbulk.providers.openai_lines import encode
from llmbulk.reuse import RequestKeys
from llmbulk.tables import InputTable
from llmbulk.tasks import TaskSpec, iter_tasks

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "product_photos"))
sys.path.insert(0, str(ROOT / "examples" / "invoices"))
from make_invoices import pdf  # noqa: E402
from make_photos import png  # noqa: E402

PROVIDERS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")]


def _gif(frames: int) -> bytes:
    """A 1x1 GIF with `frames` image descriptors (more than one: animated)."""
    frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00" + frame * frames + b"\x3b"


def _table(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "rows.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _photos(folder: Path) -> dict[str, bytes]:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    files = {"img/red.png": png(8, 8, (255, 0, 0)), "img/blue.png": png(8, 8, (0, 0, 255)), "doc.pdf": pdf(["Hi"])}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _sent(home: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for shard in sorted(home.glob("jobs/*/shards/*.jsonl"))
        for line in shard.read_bytes().splitlines()
    ]


def _tasks(path: Path, **spec: Any) -> list[Task]:
    return list(iter_tasks(InputTable(path, media=path.is_dir()), TaskSpec(**spec)))


# --- sources, placement and folder input -------------------------------------------------------------


def test_template_places_each_attachment_where_it_is_called(tmp_path: Path) -> None:
    files = _photos(tmp_path)
    path = _table(tmp_path, [{"id": "a", "photo": "img/red.png", "doc": "doc.pdf"}])
    [task] = _tasks(path, prompt="Before {{ attach(row.photo) }} between {{ attach(doc) }} after", id_column="id")
    content = task.messages[0]["content"]
    assert [p["type"] for p in content] == ["text", "attachment", "text", "attachment", "text"]
    assert content[1]["sha256"] == hashlib.sha256(files["img/red.png"]).hexdigest()
    assert content[1]["media_type"] == "image/png" and content[1]["size"] == len(files["img/red.png"])
    assert content[3]["media_type"] == "application/pdf"
    assert content[0]["text"] == "Before " and content[4]["text"] == " after"


def test_attach_option_appends_files_after_the_text_and_reads_data_uris(tmp_path: Path) -> None:
    files = _photos(tmp_path)
    uri = "data:image/png;base64," + base64.b64encode(files["img/blue.png"]).decode()
    path = _table(tmp_path, [{"photo": "img/red.png", "inline": uri}])
    [task] = _tasks(path, prompt="Label it", attach=("photo", "inline"))
    content = task.messages[0]["content"]
    assert content[0] == {"type": "text", "text": "Label it"}
    assert [p["sha256"] for p in content[1:]] == [
        hashlib.sha256(files[n]).hexdigest() for n in ("img/red.png", "img/blue.png")
    ]


def test_folder_input_is_one_row_per_image_or_pdf_by_magic_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _photos(folder)
    (folder / "notes.txt").write_text("not an image")
    (folder / "disguised.txt").write_bytes(png(2, 2, (0, 0, 0)))  # a PNG whatever its name says
    tasks = _tasks(folder, prompt="{{ attach(path) }}", id_column="path")
    assert [t.key for t in tasks] == ["disguised.txt", "doc.pdf", "img/blue.png", "img/red.png"]
    assert tasks[0].messages[0]["content"][0]["media_type"] == "image/png"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("img/missing.png", "does not exist"),
        ("notes.txt", "is not a PNG, JPEG, WebP, GIF or PDF"),
        ("http://example.com/a.png", "is not https"),
        ("https://example.com/a", "cannot tell the media type"),
        ("data:image/png;base64,@@@", "does not decode"),
        ("", "empty"),
    ],
)
def test_a_bad_attachment_value_names_the_row(tmp_path: Path, value: str, says: str) -> None:
    from llmbulk.errors import InputError

    _photos(tmp_path)
    (tmp_path / "notes.txt").write_text("text")
    path = _table(tmp_path, [{"photo": "img/red.png"}, {"photo": value}])
    with pytest.raises(InputError) as caught:
        _tasks(path, prompt="x", attach=("photo",))
    assert f"{path}: row 2: column 'photo'" in caught.value.message and says in caught.value.message


# --- request keys --------------------------------------------------------------------------------------


def test_request_key_follows_content_not_path(tmp_path: Path) -> None:
    files = _photos(tmp_path)
    keys = RequestKeys("openai", "gpt-4o-mini", None, emulated=True)

    def key_of(value: str) -> str:
        [task] = _tasks(_table(tmp_path, [{"photo": value}]), prompt="Label", attach=("photo",))
        return keys.key(task)

    first = key_of("img/red.png")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "same.png").write_bytes(files["img/red.png"])
    assert key_of("moved/same.png") == first  # moved: the same request
    uri = "data:image/png;base64," + base64.b64encode(files["img/red.png"]).decode()
    assert key_of(uri) == first  # inline: the same bytes, the same request
    (tmp_path / "img" / "red.png").write_bytes(png(8, 8, (254, 0, 0)))
    assert key_of("img/red.png") != first  # changed content: a new request


# --- provider-native parts -----------------------------------------------------------------------------


def _one_task(tmp_path: Path) -> tuple[Task, dict[str, bytes]]:
    files = _photos(tmp_path)
    path = _table(tmp_path, [{"photo": "img/red.png", "doc": "doc.pdf"}])
    [task] = _tasks(path, prompt="Read {{ attach(photo) }}", attach=("doc",))
    return task, files


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_openai_chat_and_responses_parts(tmp_path: Path) -> None:
    task, files = _one_task(tmp_path)
    chat = orjson.loads(encode(task, "j-0-1", "gpt-4o-mini", "/v1/chat/completions"))["body"]["messages"][0]["content"]
    assert chat == [
        {"type": "text", "text": "Read "},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64(files["img/red.png"])}},
        {
            "type": "file",
            "file": {"filename": "doc.pdf", "file_data": "data:application/pdf;base64," + _b64(files["doc.pdf"])},
        },
    ]
    responses = orjson.loads(encode(task, "j-0-1", "gpt-4o-mini", "/v1/responses"))["body"]["input"][0]["content"]
    assert [p["type"] for p in responses] == ["input_text", "input_image", "input_file"]
    assert responses[1]["image_url"].endswith(_b64(files["img/red.png"])) and responses[1]["detail"] == "auto"


def test_anthropic_and_gemini_parts(tmp_path: Path) -> None:
    task, files = _one_task(tmp_path)
    blocks = orjson.loads(RequestEncoder().encode(task, "j-0-1", "claude-haiku-4-5"))["params"]["messages"][0][
        "content"
    ]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _b64(files["img/red.png"])},
    }
    assert blocks[2]["type"] == "document" and blocks[2]["source"]["media_type"] == "application/pdf"
    parts = orjson.loads(encode_line(task, "j-0-1"))["request"]["contents"][0]["parts"]
    assert parts == [
        {"text": "Read "},
        {"inlineData": {"mimeType": "image/png", "data": _b64(files["img/red.png"])}},
        {"inlineData": {"mimeType": "application/pdf", "data": _b64(files["doc.pdf"])}},
    ]


def test_a_file_changed_after_packing_is_refused_at_encode(tmp_path: Path) -> None:
    from llmbulk.attachments import sources
    from llmbulk.errors import InputError

    task, _ = _one_task(tmp_path)
    sources._loaded.clear()
    (tmp_path / "img" / "red.png").write_bytes(png(8, 8, (1, 2, 3)))
    with pytest.raises(InputError, match="changed after the job was packed"):
        encode(task, "j-0-1", "gpt-4o-mini", "/v1/chat/completions")


# --- end to end on the emulator ------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "model"), PROVIDERS)
def test_inline_attachments_run_on_every_provider(
    provider: str, model: str, tmp_path: Path, home: Path, llmbulk: Callable[..., Outcome]
) -> None:
    files = _photos(tmp_path)
    uri = "data:application/pdf;base64," + _b64(files["doc.pdf"])
    rows = [{"id": "r1", "photo": "img/red.png", "doc": uri}, {"id": "r2", "photo": "img/blue.png", "doc": "doc.pdf"}]
    path = _table(tmp_path, rows)
    result = llmbulk(
        "run", str(path), "--provider", provider, "--model", model, "--prompt", "Describe {{ attach(row.photo) }}",
        "--attach", "doc", "--id-column", "id", "--out", "out.csv", "--emulate",
        "--attach-upload", "never",  # the PDF is sent by both rows: inline only when told so
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "out.csv", newline="") as fh:
        out = list(csv.DictReader(fh))
    assert [(r["id"], r["status"]) for r in out] == [("r1", "succeeded"), ("r2", "succeeded")]
    sent = orjson.dumps(_sent(home)).decode()
    for data in (files["img/red.png"], files["img/blue.png"], files["doc.pdf"]):
        assert _b64(data) in sent  # the bytes went inline, base64


@pytest.mark.parametrize(
    ("provider", "model", "name", "data", "says"),
    [
        ("gemini", "gemini-2.5-flash", "a.gif", _gif(1), "image/gif is not accepted"),
        ("openai", "gpt-4o-mini", "a.gif", _gif(3), "an animated GIF is not accepted"),
        ("anthropic", "claude-haiku-4-5", "big.png", png(9000, 1, (0, 0, 0)), "9000x1 px is over 8000 px a side"),
        ("anthropic", "claude-haiku-4-5", "huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (5 << 20), "over the 5 MB limit"),
        (
            "openai",
            "gpt-4o-mini",
            "long.pdf",
            pdf(["x"]).replace(b"/Count 1", b"/Count 1" + b" /Type /Page" * 100),
            "101 pages",
        ),
    ],
)
def test_limits_are_refused_before_anything_is_sent(
    provider: str, model: str, name: str, data: bytes, says: str, tmp_path: Path, llmbulk: Callable[..., Outcome]
) -> None:
    _photos(tmp_path)
    (tmp_path / name).write_bytes(data)
    path = _table(tmp_path, [{"id": "ok", "file": "img/red.png"}, {"id": "bad", "file": name}])
    result = llmbulk(
        "submit", str(path), "--provider", provider, "--model", model, "--prompt", "Look",
        "--attach", "file", "--id-column", "id", "--emulate",
    )  # fmt: skip
    assert result.exit_code == 2
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert "row 2 (id 'bad')" in error[0] and name in error[0] and says in error[0], result.stderr
    assert llmbulk("jobs", "--json").json() == []  # nothing recorded, nothing sent


@pytest.mark.parametrize("upload", ["never", "always"])
@pytest.mark.parametrize(("provider", "model"), PROVIDERS)
def test_each_answer_belongs_to_its_rows_files(
    provider: str, model: str, upload: str, tmp_path: Path, llmbulk: Callable[..., Outcome]
) -> None:
    """The emulator names every attachment it decoded (inline or by reference) by its sha256, in order."""
    files = _photos(tmp_path)
    rows = [{"id": "red", "photo": "img/red.png"}, {"id": "blue", "photo": "img/blue.png"}]
    path = _table(tmp_path, rows)
    result = llmbulk(
        "run", str(path), "--provider", provider, "--model", model, "--prompt", "What is in {{ attach(photo) }}?",
        "--attach", "photo", "--id-column", "id", "--attach-upload", upload, "--out", "out.csv", "--emulate",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "out.csv", newline="") as fh:
        out = {r["id"]: r["output"] for r in csv.DictReader(fh)}
    for key, name in (("red", "img/red.png"), ("blue", "img/blue.png")):
        digest = hashlib.sha256(files[name]).hexdigest()[:12]
        assert f"[seen: image/png {digest}, image/png {digest}]" in out[key], out[key]
