"""The ASGI entry point: `gunicorn -c deploy/gunicorn.conf.py asgi:app`."""

from jobline.app import create_app

app = create_app()
