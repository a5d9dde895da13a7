"""Logic mode: tools whose results are computed, not guessed (exact arithmetic and algebra,
a Python sandbox) and self-consistency voting over sampled answers."""

MAX_K = 16  # most samples one logic-mode request may ask for
