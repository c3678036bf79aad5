"""Matplotlib figures as reproducible PNG bytes (no timestamp), and as data URIs for self-contained pages."""
from __future__ import annotations

import base64
import io


def figure_png(fig, dpi: int) -> bytes:
    """The figure as PNG bytes; closes it. No 'Software' metadata, so the bytes depend only on the plot."""
    # deferred: a caller has made `fig`, so matplotlib is loaded by then; a stage that imports this
    # module but draws nothing on a run (evaluate's curve) does not pay matplotlib's import (~1.5 s)
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()
