"""Writes a few small one-page invoice PDFs into invoices/, by hand (standard library only)."""

from __future__ import annotations

from pathlib import Path

INVOICES = [
    ("INV-1001", "Acme Tools Ltd", "2026-01-15", [("Hammer", 2, 12.50), ("Screwdriver set", 1, 24.00)]),
    ("INV-1002", "Blue River Coffee", "2026-02-03", [("Espresso beans 1 kg", 3, 18.00)]),
    ("INV-1003", "Northwind Office", "2026-02-20", [("Printer paper", 10, 4.20), ("Stapler", 2, 7.90)]),
    ("INV-1004", "Sunrise Bakery", "2026-03-01", [("Catering, 40 guests", 1, 320.00)]),
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(lines: list[str]) -> bytes:
    """A one-page PDF showing `lines` in Helvetica, with a correct cross-reference table."""
    stream = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(f"({_escape(line)}) '" for line in lines) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def main() -> None:
    folder = Path(__file__).resolve().parent / "invoices"
    folder.mkdir(exist_ok=True)
    for number, vendor, date, items in INVOICES:
        total = sum(quantity * price for _, quantity, price in items)
        lines = [f"INVOICE {number}", f"From: {vendor}", f"Date: {date}", ""]
        lines += [f"{quantity} x {name} @ EUR {price:.2f}" for name, quantity, price in items]
        lines += ["", f"Total due: EUR {total:.2f}"]
        (folder / f"{number}.pdf").write_bytes(pdf(lines))
    print(f"wrote {len(INVOICES)} PDFs to {folder}")


if __name__ == "__main__":
    main()
