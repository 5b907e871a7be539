"""Generated product pictures and shop logos for the demo world: no downloads, no fonts.

Each picture is a soft two-colour gradient with a simple drawn motif (a bangle, a vase, a shirt, a
split mattress, ...), tinted by the shop's colour and varied by the product's key. The same key
always gives the same bytes, so the demo world looks the same on every machine.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

from PIL import Image, ImageDraw

RGB = tuple[int, int, int]
PRODUCT_SIDE = 480
LOGO_SIDE = 256
_SCALE = 2  # draw at twice the size, then downscale: smooth edges without anti-aliasing support


def hex_rgb(value: str) -> RGB:
    value = value.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """``a`` moved a share ``t`` towards ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _unit(key: str, salt: str) -> float:
    """A stable number in [0, 1) from ``key`` (not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)

Motif = Callable[[ImageDraw.ImageDraw, int, RGB, RGB], None]


def _bangle(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.ellipse((s * 0.2, s * 0.26, s * 0.8, s * 0.74), outline=ink, width=int(s * 0.085))
    d.arc((s * 0.24, s * 0.3, s * 0.76, s * 0.7), 200, 260, fill=accent, width=int(s * 0.02))


def _pendant(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.line((s * 0.5, s * 0.08, s * 0.5, s * 0.3), fill=accent, width=int(s * 0.012))
    d.ellipse((s * 0.27, s * 0.3, s * 0.73, s * 0.76), fill=ink)
    d.ellipse((s * 0.43, s * 0.46, s * 0.57, s * 0.6), fill=_mix(ink, WHITE, 0.75))


def _ring(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.ellipse((s * 0.3, s * 0.4, s * 0.7, s * 0.8), outline=(212, 175, 55), width=int(s * 0.04))
    d.ellipse((s * 0.4, s * 0.22, s * 0.6, s * 0.44), fill=ink, outline=(212, 175, 55), width=int(s * 0.015))


def _pebble(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    points = [(0.3, 0.32), (0.48, 0.22), (0.68, 0.28), (0.76, 0.5), (0.66, 0.72), (0.42, 0.78), (0.26, 0.6)]
    d.polygon([(x * s, y * s) for x, y in points], fill=ink)
    d.ellipse((s * 0.4, s * 0.36, s * 0.52, s * 0.46), fill=_mix(ink, WHITE, 0.35))


def _vase(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    body = [(0.44, 0.16), (0.56, 0.16), (0.55, 0.26), (0.7, 0.42), (0.68, 0.66), (0.58, 0.84)]
    body += [(0.42, 0.84), (0.32, 0.66), (0.3, 0.42), (0.45, 0.26)]
    d.polygon([(x * s, y * s) for x, y in body], fill=WHITE, outline=ink, width=int(s * 0.012))
    for y in (0.46, 0.6):
        d.arc((s * 0.33, s * (y - 0.06), s * 0.67, s * (y + 0.06)), 0, 180, fill=ink, width=int(s * 0.02))
    d.ellipse((s * 0.45, s * 0.5, s * 0.55, s * 0.58), fill=accent)


def _cup(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.chord((s * 0.24, s * 0.2, s * 0.76, s * 0.78), 0, 180, fill=WHITE, outline=ink, width=int(s * 0.012))
    d.rectangle((s * 0.24, s * 0.47, s * 0.76, s * 0.5), fill=WHITE)
    d.line((s * 0.24, s * 0.49, s * 0.76, s * 0.49), fill=ink, width=int(s * 0.014))
    d.arc((s * 0.34, s * 0.52, s * 0.66, s * 0.66), 20, 160, fill=ink, width=int(s * 0.02))
    d.rectangle((s * 0.42, s * 0.76, s * 0.58, s * 0.8), fill=ink)
    d.ellipse((s * 0.47, s * 0.56, s * 0.53, s * 0.62), fill=accent)


def _shirt(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    points = [(0.36, 0.2), (0.44, 0.24), (0.56, 0.24), (0.64, 0.2), (0.8, 0.32), (0.72, 0.42)]
    points += [(0.66, 0.38), (0.66, 0.8), (0.34, 0.8), (0.34, 0.38), (0.28, 0.42), (0.2, 0.32)]
    d.polygon([(x * s, y * s) for x, y in points], fill=ink)
    d.chord((s * 0.44, s * 0.17, s * 0.56, s * 0.3), 0, 180, fill=_mix(ink, WHITE, 0.8))
    d.ellipse((s * 0.47, s * 0.46, s * 0.53, s * 0.52), fill=accent)


def _dress(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    points = [(0.42, 0.18), (0.58, 0.18), (0.6, 0.42), (0.76, 0.84), (0.24, 0.84), (0.4, 0.42)]
    d.polygon([(x * s, y * s) for x, y in points], fill=ink)
    d.rectangle((s * 0.4, s * 0.4, s * 0.6, s * 0.45), fill=accent)


def _scarf(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.polygon([(s * 0.5, s * 0.16), (s * 0.84, s * 0.5), (s * 0.5, s * 0.84), (s * 0.16, s * 0.5)], fill=ink)
    d.polygon([(s * 0.5, s * 0.3), (s * 0.7, s * 0.5), (s * 0.5, s * 0.7), (s * 0.3, s * 0.5)], fill=accent)


def _shoe(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    points = [(0.22, 0.42), (0.42, 0.4), (0.52, 0.52), (0.78, 0.58), (0.8, 0.68), (0.22, 0.68)]
    d.polygon([(x * s, y * s) for x, y in points], fill=ink)
    d.rectangle((s * 0.2, s * 0.68, s * 0.82, s * 0.72), fill=accent)


def _mattress(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    # The cube mattress: two halves of different firmness side by side, seen at a slant.
    left = [(0.22, 0.34), (0.54, 0.34), (0.46, 0.54), (0.14, 0.54)]
    right = [(0.54, 0.34), (0.86, 0.34), (0.78, 0.54), (0.46, 0.54)]
    d.polygon([(x * s, y * s) for x, y in left], fill=ink)
    d.polygon([(x * s, y * s) for x, y in right], fill=_mix(ink, WHITE, 0.45))
    d.rectangle((s * 0.14, s * 0.54, s * 0.78, s * 0.68), fill=_mix(ink, BLACK, 0.3))
    side = [(0.78, 0.54), (0.86, 0.34), (0.86, 0.48), (0.78, 0.68)]
    d.polygon([(x * s, y * s) for x, y in side], fill=_mix(ink, BLACK, 0.45))
    d.line((s * 0.54, s * 0.34, s * 0.46, s * 0.54), fill=accent, width=int(s * 0.012))


def _sofa(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.rounded_rectangle((s * 0.2, s * 0.3, s * 0.8, s * 0.56), radius=int(s * 0.05), fill=ink)
    d.rounded_rectangle(
        (s * 0.14, s * 0.46, s * 0.86, s * 0.7), radius=int(s * 0.05), fill=_mix(ink, BLACK, 0.2)
    )
    d.rectangle((s * 0.2, s * 0.7, s * 0.24, s * 0.78), fill=accent)
    d.rectangle((s * 0.76, s * 0.7, s * 0.8, s * 0.78), fill=accent)


def _cabinet(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.rectangle((s * 0.3, s * 0.3, s * 0.7, s * 0.74), fill=ink)
    for top in (0.34, 0.53):
        d.rectangle((s * 0.34, s * top, s * 0.66, s * (top + 0.16)), outline=_mix(ink, WHITE, 0.5), width=4)
        d.ellipse((s * 0.48, s * (top + 0.06), s * 0.52, s * (top + 0.1)), fill=accent)


def _pillow(d: ImageDraw.ImageDraw, s: int, ink: RGB, accent: RGB) -> None:
    d.rounded_rectangle((s * 0.18, s * 0.36, s * 0.82, s * 0.66), radius=int(s * 0.12), fill=ink)
    d.line((s * 0.24, s * 0.51, s * 0.76, s * 0.51), fill=accent, width=int(s * 0.01))


MOTIFS: dict[str, Motif] = {
    "bangle": _bangle,
    "pendant": _pendant,
    "ring": _ring,
    "pebble": _pebble,
    "vase": _vase,
    "cup": _cup,
    "shirt": _shirt,
    "dress": _dress,
    "scarf": _scarf,
    "shoe": _shoe,
    "mattress": _mattress,
    "sofa": _sofa,
    "cabinet": _cabinet,
    "pillow": _pillow,
}


def _canvas(key: str, tint: RGB, side: int) -> Image.Image:
    light = _mix(tint, WHITE, 0.82 + 0.1 * _unit(key, "light"))
    deep = _mix(tint, WHITE, 0.45 + 0.15 * _unit(key, "deep"))
    # A small gradient twice the size, turned and cropped in the middle (no uncovered corners),
    # then enlarged: a linear ramp scales up smoothly, and turning a small image is cheap.
    mask = Image.linear_gradient("L")  # 256 x 256, black at the top
    mask = mask.rotate(int(90 * _unit(key, "turn")) - 45, resample=Image.Resampling.BICUBIC)
    mask = mask.crop((64, 64, 192, 192)).resize((side, side), Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", (side, side), deep), Image.new("RGB", (side, side), light), mask)


def product_image(key: str, motif: str, tint: RGB) -> bytes:
    """A JPEG (about 10-20 kB) for the product identified by ``key``."""
    side = PRODUCT_SIDE * _SCALE
    image = _canvas(key, tint, side)
    ink = _mix(tint, BLACK, 0.15 + 0.25 * _unit(key, "ink"))
    accent = _mix(tint, WHITE, 0.6)
    MOTIFS.get(motif, _bangle)(ImageDraw.Draw(image), side, ink, accent)
    image = image.reduce(_SCALE)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def logo_image(key: str, tint: RGB) -> bytes:
    """A PNG shop logo: a tinted disc with a lighter inner ring."""
    side = LOGO_SIDE * _SCALE
    image = Image.new("RGB", (side, side), WHITE)
    draw = ImageDraw.Draw(image)
    draw.ellipse((side * 0.04, side * 0.04, side * 0.96, side * 0.96), fill=tint)
    draw.ellipse(
        (side * 0.2, side * 0.2, side * 0.8, side * 0.8), outline=_mix(tint, WHITE, 0.7), width=side // 20
    )
    angle = int(360 * _unit(key, "logo"))
    draw.pieslice((side * 0.32, side * 0.32, side * 0.68, side * 0.68), angle, angle + 120, fill=WHITE)
    image = image.reduce(_SCALE)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
