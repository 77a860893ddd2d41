"""Training runs: status, loss curves and validation images/metrics of `sarviz train` runs."""

from sarviz.ui.training import runs_page

runs_page()
