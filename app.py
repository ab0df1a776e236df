"""Entry point of the PetNet demo: ``python app.py`` locally, ``app_file`` of the Hugging Face Space.

Serves on 127.0.0.1:7860 unless ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` say otherwise.
"""

from app.demo import build_demo, launch_options
from petnet.memory import cap_malloc_arenas

cap_malloc_arenas()
demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
