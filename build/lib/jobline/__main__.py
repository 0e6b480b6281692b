"""`python -m jobline`: the same CLI as the `jobline` script."""

from jobline.cli import app

app(prog_name="jobline")
