"""HEIF/AVIF container parsing shared by the HEVC and AVIF wrappers (ISO/IEC 14496-12 and 23008-12).

Both formats store a still image as one *item*: its coded data lies in ``mdat`` at the extents that the
``iloc`` box lists; its decoder configuration (``hvcC``/``av1C``: parameter sets, sequence header) and
its size, colour and crop properties lie in ``meta``. :func:`primary_item` finds the primary item's data
and the fields that only restate its length: the ``mdat`` box size and the ``iloc`` extent lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from jointcodec.codecs.base import PayloadCutError, Span


@dataclass(frozen=True)
class Box:
    type: str
    start: int
    body: int  # first byte after the header (and after version/flags for a full box, see ``full``)
    end: int

    def size_field(self) -> Span:
        large = self.body - self.start >= 16 and self.type != "uuid"
        return (self.start + 8, self.start + 16) if large else (self.start, self.start + 4)


FULL_BOXES = {"meta", "pitm", "iloc", "iinf", "infe", "ipma", "hdlr"}


def read_boxes(data: bytes, start: int, end: int) -> list[Box]:
    boxes, pos = [], start
    while pos < end:
        if pos + 8 > end:
            raise PayloadCutError(f"box header truncated at byte {pos}")
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8].decode("latin-1")
        body = pos + 8
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
            body = pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            raise PayloadCutError(f"box {kind!r} at byte {pos} has an impossible size {size}")
        boxes.append(Box(kind, pos, body + (4 if kind in FULL_BOXES else 0), pos + size))
        pos += size
    return boxes


def only(boxes: list[Box], kind: str) -> Box:
    found = [b for b in boxes if b.type == kind]
    if len(found) != 1:
        raise PayloadCutError(f"expected one {kind!r} box, found {len(found)}")
    return found[0]


def _uint(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos:pos + size], "big")


@dataclass(frozen=True)
class Item:
    """The primary item: its data extents in the file, the length fields, and its property boxes."""

    extents: tuple[Span, ...]
    framing: tuple[Span, ...]
    properties: dict[str, bytes]  # first box of each type in ipco, body only (e.g. "hvcC", "av1C")

    def data(self, data: bytes) -> bytes:
        return b"".join(data[a:b] for a, b in self.extents)


def primary_item(data: bytes) -> Item:
    top = read_boxes(data, 0, len(data))
    if not top or top[0].type != "ftyp":
        raise PayloadCutError("not an ISO-BMFF file (no ftyp box first)")
    meta, mdat = only(top, "meta"), only(top, "mdat")
    children = read_boxes(data, meta.body, meta.end)
    pitm = only(children, "pitm")
    item_id = _uint(data, pitm.body, 2 if data[pitm.start + 8] == 0 else 4)
    extents, framing = _iloc_extents(data, only(children, "iloc"), item_id)
    if sorted(extents)[0][0] != mdat.body or sum(b - a for a, b in extents) != mdat.end - mdat.body:
        # Anything else in mdat (a thumbnail, another item) would be per-image data left uncounted.
        raise PayloadCutError("mdat holds more than the primary item's data")
    ipco = only(read_boxes(data, only(children, "iprp").body, only(children, "iprp").end), "ipco")
    properties: dict[str, bytes] = {}
    for box in read_boxes(data, ipco.body, ipco.end):
        properties.setdefault(box.type, data[box.body:box.end])
    return Item(tuple(extents), (mdat.size_field(), *framing), properties)


def _iloc_extents(data: bytes, iloc: Box, item_id: int) -> tuple[list[Span], list[Span]]:
    """The item's extents as file spans, and the spans of their extent_length fields."""
    version = data[iloc.start + 8]
    pos = iloc.body
    offset_size, length_size = data[pos] >> 4, data[pos] & 15
    base_size, index_size = data[pos + 1] >> 4, (data[pos + 1] & 15) if version in (1, 2) else 0
    pos += 2
    id_size = 4 if version == 2 else 2
    count = _uint(data, pos, id_size)
    pos += id_size
    for _ in range(count):
        this_id = _uint(data, pos, id_size)
        pos += id_size
        method = 0
        if version in (1, 2):
            method = _uint(data, pos, 2) & 15
            pos += 2
        pos += 2  # data_reference_index
        base = _uint(data, pos, base_size)
        pos += base_size
        n_extents = _uint(data, pos, 2)
        pos += 2
        extents, framing = [], []
        for _ in range(n_extents):
            pos += index_size
            offset = base + _uint(data, pos, offset_size)
            pos += offset_size
            length = _uint(data, pos, length_size)
            framing.append((pos, pos + length_size))
            pos += length_size
            extents.append((offset, offset + length))
        if this_id == item_id:
            if method != 0 or not extents or any(b <= a or b > len(data) for a, b in extents):
                raise PayloadCutError("the primary item is not stored as file extents in mdat")
            return extents, framing
    raise PayloadCutError(f"iloc lists no location for the primary item {item_id}")
