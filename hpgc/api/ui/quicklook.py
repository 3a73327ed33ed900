"""GeoTIFF (and other TIFF) results as a PNG quicklook for the job page, rendered on the server: browsers show
no TIFF. Pillow and numpy do it when they are installed (they are in the test extras; a site adds them with
`pip install pillow numpy`); without them the job page offers the download only.

The file is read at most QUICKLOOK_BYTES, decoded in a worker thread with a pixel limit (no decompression
bomb), each band stretched between its 2nd and 98th percentiles, and scaled to at most 1024 pixels a side."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import warnings

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.problems import problem
from hpgc.backends.base import BackendError
from hpgc.jobs.results import ResultFile

QUICKLOOK_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 100_000_000
SIDE = 1024
TIFF = ("image/tiff", "image/tiff; application=geotiff", "image/geo+tiff")
AVAILABLE = importlib.util.find_spec("PIL") is not None and importlib.util.find_spec("numpy") is not None


def render(data: bytes) -> bytes:
    """PNG bytes of the TIFF `data`; ValueError for anything Pillow cannot or will not decode."""
    try:
        return _render(data)
    except (ValueError, OSError, MemoryError):
        raise
    except Exception as exc:  # Pillow's DecompressionBombError and friends are bare Exceptions
        raise ValueError(str(exc)) from None


def _render(data: bytes) -> bytes:
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a job's odd TIFF tags are not the server's log's business
        img = Image.open(io.BytesIO(data))
        img.seek(0)
        if img.width * img.height > MAX_PIXELS:
            raise ValueError("the image is too large for a quicklook")
        img.draft("RGB", (SIDE, SIDE))
        array = np.asarray(img)
        img.close()
    if array.ndim == 3 and array.shape[2] > 3:
        array = array[:, :, :3]
    array = array.astype("float64")
    finite = np.isfinite(array)
    if not finite.any():
        raise ValueError("the image holds no finite value")
    lo, hi = np.percentile(array[finite], [2, 98])
    scaled = np.clip((np.nan_to_num(array, nan=lo) - lo) / ((hi - lo) or 1.0) * 255, 0, 255).astype("uint8")
    out = Image.fromarray(scaled)
    out.thumbnail((SIDE, SIDE))
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()


async def quicklook(request: web.Request) -> web.StreamResponse:
    job_id, oid = request.match_info["job_id"], request.match_info["output_id"]
    result = await request.app[JOBS].output(principal(request), job_id, oid)
    if not AVAILABLE or not isinstance(result, ResultFile) or result.item.media_type.split(";")[0] not in TIFF:
        return problem(404, "Not found", "no quicklook of this output (a TIFF result, with Pillow installed)")
    try:
        if await result.size() > QUICKLOOK_BYTES:
            return problem(413, "Too large", "this output is too large for a quicklook: download it")
        data = b"".join([chunk async for chunk in result.read(0, QUICKLOOK_BYTES)])
        png = await asyncio.to_thread(render, data)
    except (BackendError, OSError, ValueError) as exc:  # Pillow's errors are OSError or ValueError
        return problem(422, "No quicklook", f"this output cannot be shown: {exc}")
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=300"})


def setup_quicklook(app: web.Application) -> None:
    app.router.add_get("/ui/jobs/{job_id}/quicklook/{output_id}", quicklook)
