"""A small line chart drawn with Pillow (no plotting library is a dependency): the experiments' figures."""
from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..fileio import write_bytes_atomic

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")


def line_chart(lines: dict[str, list[tuple[float, float, float]]], x_label: str, y_label: str, path: str | Path,
               size: tuple[int, int] = (900, 560)) -> Path:
    """One line per name through its ``(x, y, spread)`` points, x on a log scale, a ± spread bar at
    each point, a legend on the right; written atomically as PNG."""
    width, height = size
    font = ImageFont.load_default(13)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 60, 34, width - 250, height - 50
    points = [p for series in lines.values() for p in series]
    xs = sorted({p[0] for p in points})
    low = math.floor(min(p[1] - p[2] for p in points) / 5) * 5
    high = math.ceil(max(p[1] + p[2] for p in points) / 5) * 5
    high = high if high > low else low + 5
    span_x = math.log(xs[-1] / xs[0]) if len(xs) > 1 and xs[0] > 0 else 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        fx = math.log(x / xs[0]) / span_x if len(xs) > 1 else 0.5
        return left + fx * (right - left), bottom - (y - low) / (high - low) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline="black")
    step = 5 if high - low <= 40 else 10
    for y in range(int(low), int(high) + 1, step):
        _, py = at(xs[0], y)
        draw.line([left, py, right, py], fill="#e5e5e5")
        draw.text((left - 8, py), str(y), fill="black", font=font, anchor="rm")
    for x in xs:
        px, _ = at(x, low)
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px, bottom + 8), f"{x:g}", fill="black", font=font, anchor="ma")
    draw.text(((left + right) / 2, height - 18), x_label, fill="black", font=font, anchor="ma")
    draw.text((8, 8), y_label, fill="black", font=font)
    for i, (name, series) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        pixels = [at(x, y) for x, y, _ in series]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for (x, y, spread), (px, py) in zip(series, pixels):
            draw.line([px, at(x, y - spread)[1], px, at(x, y + spread)[1]], fill=colour, width=1)
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = top + 10 + 20 * i
        draw.line([right + 15, ly, right + 40, ly], fill=colour, width=3)
        draw.text((right + 48, ly), name, fill="black", font=font, anchor="lm")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(Path(path), buffer.getvalue())
    return Path(path)
