"""Writes a few small product "photos" (solid-colour PNGs with a stripe) into photos/, standard library only."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PRODUCTS = {
    "red-mug": (200, 30, 40),
    "blue-sneaker": (30, 60, 200),
    "green-lamp": (40, 160, 70),
    "yellow-raincoat": (230, 200, 30),
    "black-backpack": (20, 20, 20),
    "white-teapot": (240, 240, 235),
}
SIZE = 48


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """An 8-bit RGB PNG: the colour, with a grey stripe across the middle."""
    rows = []
    for y in range(height):
        colour = (128, 128, 128) if height // 3 <= y < height // 3 + 4 else rgb
        rows.append(b"\0" + bytes(colour) * width)  # filter byte 0, then the pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(
        b"IEND", b""
    )


def main() -> None:
    folder = Path(__file__).resolve().parent / "photos"
    folder.mkdir(exist_ok=True)
    for name, rgb in PRODUCTS.items():
        (folder / f"{name}.png").write_bytes(png(SIZE, SIZE, rgb))
    print(f"wrote {len(PRODUCTS)} PNGs to {folder}")


if __name__ == "__main__":
    main()
