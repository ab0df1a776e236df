"""User interfaces over the ``petnet`` library: the Gradio demo (:mod:`app.demo`) and the dashboard.

``app`` imports ``petnet``, never the other way round; UI libraries are imported only here.
"""
