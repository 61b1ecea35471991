"""Split documents.jsonl into chunks.jsonl (about two sentences per chunk), the input of the Q&A job."""

import json
import re
from pathlib import Path

here = Path(__file__).parent
with open(here / "documents.jsonl") as src, open(here / "chunks.jsonl", "w") as out:
    for line in src:
        doc = json.loads(line)
        sentences = re.split(r"(?<=[.!?])\s+", doc["text"].strip())
        for n, start in enumerate(range(0, len(sentences), 2)):
            chunk = " ".join(sentences[start : start + 2])
            out.write(json.dumps({"chunk_id": f"{doc['doc_id']}-{n}", "doc_id": doc["doc_id"], "title": doc["title"], "text": chunk}) + "\n")
