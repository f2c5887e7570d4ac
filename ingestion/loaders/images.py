"""Scans, photos and screenshots (PNG, JPEG, TIFF, WebP) read by OCR, one page per image frame
(a multi-page TIFF is a multi-page document)."""

from __future__ import annotations

from pathlib import Path

from ingestion.loaders.common import Block, LoadError, LoadLimits
from ingestion.loaders.ocr import OcrPage, OcrReader

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


def image_blocks(path: Path, limits: LoadLimits) -> tuple[list[Block], list[OcrPage]]:
    """The text of every frame, and each page as read (for its confidence)."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    reader = OcrReader(limits)
    pages: list[OcrPage] = []
    try:
        # Only the header is read here: the size is checked before any pixel is decoded.
        with Image.open(path) as image:
            reader.check_pixels(image.width, image.height, "the image")
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                reader.check_pixels(frame.width, frame.height, f"page {number}")
                # Phones record a photo's rotation in EXIF instead of turning its pixels.
                upright = ImageOps.exif_transpose(frame.copy())
                pages.append(reader.read(upright, number))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        # OSError: truncated or corrupt pixel data.
        raise LoadError(f"cannot read the image: {exc}") from exc
    blocks = [b for p in pages for b in p.blocks()]
    if not blocks:
        raise LoadError("OCR found no text in the image")
    return blocks, pages
