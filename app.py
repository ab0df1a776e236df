"""Entry point of the PetNet demo: ``python app.py`` locally, ``app_file`` of the Hugging Face Space.

Serves on 127.0.0.1:7860 unless ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` say otherwise.
Behind a proxy on a private network (a Space's), the visitor's address is the one the proxy
forwards (``FORWARDED_ALLOW_IPS``, :data:`app.demo.TRUSTED_PROXIES` unless set).
"""

import os

from app.demo import TRUSTED_PROXIES, build_demo, launch_options
from petnet.memory import cap_malloc_arenas

cap_malloc_arenas()
os.environ.setdefault("FORWARDED_ALLOW_IPS", TRUSTED_PROXIES)
demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
