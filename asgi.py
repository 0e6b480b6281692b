"""The ASGI entry point: `gunicorn -c deploy/gunicorn.conf.py asgi:app`."""

from jobline.api.app import create_app

app = create_app()
