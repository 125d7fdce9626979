"""report.html in a real headless browser (Chromium): it loads and every image renders.

Skipped when Chromium is absent (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import torch

from spinglass_icl.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_html_renders_every_image_with_caption_at_600px(tmp_path):
    out = tmp_path / "rep"
    threads = torch.get_num_threads()
    try:
        for fig in ("hessian", "double-descent"):
            assert main(["reproduce", fig, "--preset", "tiny", "--out", str(out),
                         "--no-progress"]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    html = out / "report.html"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
         "--virtual-time-budget=5000", "--dump-dom", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'id="img-status"[^>]*data-loaded="(-?\d+)"[^>]*data-total="(-?\d+)"',
                  proc.stdout)  # fmt: skip
    assert m, proc.stdout[:2000]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total == 2
    assert loaded == total
    assert "images loaded" not in proc.stdout  # the hook is hidden, never shown
    # every figure has a caption and is shown at least 600 px wide
    caps = re.search(r'data-captions="(\d+)"', proc.stdout)
    width = re.search(r'data-min-width="(\d+)"', proc.stdout)
    assert caps and int(caps.group(1)) == total
    assert width and int(width.group(1)) >= 600, width and width.group(1)
