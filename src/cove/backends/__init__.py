"""Remote backends: OpenAI-compatible engines (vLLM, SGLang, llama-server, other Cove workers)
that serve models for this Cove, and the router in front of them.

``registry`` (the ``backends.json`` file), ``ring`` (consistent hashing with bounded loads),
``router`` (choice, breakers, figures), ``remote`` (an upstream stream as a pipeline stream),
``service`` (what the pipeline calls), ``metrics`` (``/metrics``), ``cli`` (``cove backend``).
Nothing here imports the pipeline; the pipeline imports :mod:`cove.backends.service`.
"""
