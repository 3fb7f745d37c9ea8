"""A minimal PDF writer for tests and the example documents: text lines on pages, Helvetica."""

from __future__ import annotations


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def simple_pdf(lines: list[str], lines_per_page: int = 45) -> bytes:
    pages = [lines[i : i + lines_per_page] for i in range(0, len(lines), lines_per_page)] or [[]]
    objects: list[bytes] = []  # object n is objects[n - 1]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"")  # the page tree, written once the pages are known
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for page in pages:
        text = "BT /F1 11 Tf 14 TL 56 790 Td " + " ".join(f"({_escape(line)}) Tj T*" for line in page) + " ET"
        stream = text.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % content
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % len(kids)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


FIELD_TRIPS = [
    "Halvorsen Station: field trip rules",
    "",
    "Every field trip leaves from the boot room and needs at least two people.",
    "The trip leader signs the trip board with the route and the expected return time.",
    "",
    "Snowmobiles",
    "The station has four snowmobiles. The red one, number 3, is kept for rescue only",
    "and may be taken out only by the standby crew. Fuel cans are stored in the shed",
    "behind the generator house, never inside a dome.",
    "",
    "The glacier route",
    "The route to the Kessel glacier is marked with orange poles every 50 metres.",
    "Teams must turn back if they cannot see the next pole. The glacier hut at the end",
    "of the route has an emergency stove, sleeping bags for six and a satellite phone",
    "whose number is written on the inside of the hut door.",
    "",
    "Polar bear safety",
    "Each team carries a flare pistol and a bear spray. The nearest bear sighting",
    "this season was reported at the north beach on 14 March by the geology team.",
]
