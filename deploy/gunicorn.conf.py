"""gunicorn -c deploy/gunicorn.conf.py asgi:app

The settings live in jobline.gunicorn_conf (a module of the package, so an installed
jobline has them too: `gunicorn -c python:jobline.gunicorn_conf 'jobline.app:create_app()'`).
gunicorn reads the names this file defines: every setting and hook, imported from there.
"""

from jobline.gunicorn_conf import *  # noqa: F403
